from sqlalchemy.orm import sessionmaker

SessionLocal = sessionmaker()
