"""The category model's linear half (shared.classifier.LinearModel), trained offline.

A linear support vector machine (scikit-learn's LinearSVC: each class against the rest) over the
character 1-3-grams a call has, each counted once and weighted by its inverse document frequency,
the call's vector scaled to length 1. Trained on the category examples with the jurisdiction's
phrases (``with_phrases``), as naive Bayes is; written to shared/data/category_linear.json by
``python -m tools.accuracy --write-examples``; intake only reads it. The same examples give the
same weights. scikit-learn is a development dependency, imported only here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from shared.classifier import Example, LinearModel, LinearWeights, ngrams

# An n-gram in fewer examples than this is left out, and a coefficient smaller than PRUNE is 0: a
# file a tenth the size (23,620 n-grams and 93,089 weights of the shipped examples), as good
# cross-validated.
MIN_DF = 3
PRUNE = 0.05
# The margin's cost (LinearSVC's C): chosen cross-validated with LINEAR_WEIGHT.
C = 0.5
DIGITS = 4  # the weights' decimals in the file

_TRAINED: dict[str, LinearWeights] = {}


def weights(examples: Sequence[Example]) -> LinearWeights:
    """The weights trained on ``examples``; kept per set of examples for the session, since
    cross-validation trains the same folds again for every report of a set."""
    made = f"{C} {MIN_DF} {PRUNE} {DIGITS}\n" + "\n".join(f"{e.category}\t{e.content}" for e in examples)
    key = hashlib.sha256(made.encode()).hexdigest()
    if key not in _TRAINED:
        _TRAINED[key] = _train(examples)
    return _TRAINED[key]


def train(examples: Sequence[Example]) -> LinearModel:
    return LinearModel(weights(examples))


def _train(examples: Sequence[Example]) -> LinearWeights:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vectoriser = TfidfVectorizer(analyzer=ngrams, binary=True, min_df=MIN_DF)
    features = vectoriser.fit_transform([e.content for e in examples])
    svm = LinearSVC(C=C, random_state=0).fit(features, [e.category for e in examples])
    coef = svm.coef_.copy()
    coef[np.abs(coef) < PRUNE] = 0.0
    idf = vectoriser.idf_
    grams = {}
    for gram, column in sorted(vectoriser.vocabulary_.items()):
        kept = np.flatnonzero(coef[:, column])
        weights = {int(i): round(float(coef[i, column] * idf[column]), DIGITS) for i in kept}
        grams[gram] = (round(float(idf[column]), DIGITS), weights)
    bias = [round(float(b), DIGITS) for b in svm.intercept_]
    return LinearWeights([str(code) for code in svm.classes_], bias, grams)
