"""A small shop: a FastAPI app over async SQLAlchemy 2.0."""
