from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config

# Connects by itself: ignores a connection handed over by the caller.
engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.",
                            poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
