"""Whistle's common library: the contract, settings, database, messaging and operations kit."""
