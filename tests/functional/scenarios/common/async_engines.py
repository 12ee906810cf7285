"""Async engines of a scenario's own (not the app's, not the run's)."""

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def engine_of_its_own(url, **kwargs) -> AsyncEngine:
    """An async engine on ``url``. asyncpg takes the application name (which
    the suite counts sessions by) as a server setting, not as a URL's query."""
    name = url.query.get("application_name")
    if url.get_driver_name() != "asyncpg" or name is None:
        return create_async_engine(url, **kwargs)
    return create_async_engine(url.difference_update_query(["application_name"]),
                               connect_args={"server_settings": {"application_name": name}}, **kwargs)
