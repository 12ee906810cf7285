"""Authors and their books, and a page that lists them: with a lazy load
for each author (the N+1 pattern) or with one query for all the books."""

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    books: Mapped[list["Book"]] = relationship(back_populates="author", order_by="Book.id")


class Book(Base):
    __tablename__ = "book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("author.id"))
    author: Mapped[Author] = relationship(back_populates="books")


def add_shelf(session, authors=3):
    for i in range(authors):
        session.add(Author(name=f"author {i}", books=[Book(title=f"book {i}.{j}") for j in range(2)]))
    session.flush()


def page_lazy(session):
    lines = []
    for author in session.scalars(select(Author).order_by(Author.id)):
        lines.append(f"{author.name}: {', '.join(book.title for book in author.books)}")  # a query per author
    return lines


def page_eager(session):
    query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
    return [f"{a.name}: {', '.join(b.title for b in a.books)}" for a in session.scalars(query)]


async def page_async_per_author(session):
    lines = []
    for author in (await session.scalars(select(Author).order_by(Author.id))).all():
        books = await session.scalars(select(Book.title).where(Book.author_id == author.id))  # a query per author
        lines.append(f"{author.name}: {', '.join(books)}")
    return lines
