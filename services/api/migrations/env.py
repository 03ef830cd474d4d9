from services.api.store import Model
from shared.db import run_migrations_online

run_migrations_online(Model.metadata)
