"""The bookshop served by a real HTTP server in a thread (werkzeug's
make_server, as a browser test would use) and called over HTTP. Every
request runs in the server's threads on the test's transaction: it sees the
test's rows, its writes are the test's, and all of it is rolled back after
the test. The server is stopped before the test ends; a thread that used
the database after its test would be refused (ThreadOutlivedTestError)."""

import json
import logging
import threading
import urllib.request

from bookshop.models import Book
from werkzeug.serving import make_server

from tests.factories import BookFactory
from tests.test_shop import ShopTest

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the report


class TestOverHttp(ShopTest):
    def setUp(self):
        super().setUp()
        server = make_server("127.0.0.1", 0, self.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="bookshop server")
        thread.start()
        # Cleanups run last first: the server stops, then its thread is joined.
        self.addCleanup(thread.join)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.url = f"http://127.0.0.1:{server.server_port}"

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    def test_a_book_posted_over_http_is_the_tests(self):
        status, body = self.call("POST", "/books", {"title": "Solaris", "price_cents": 1500, "stock": 1})
        self.assertEqual(status, 201)
        self.assertEqual(self.session.get(Book, body["id"]).title, "Solaris")

    def test_the_server_sees_the_tests_rows(self):
        BookFactory.create_batch(2)
        status, books = self.call("GET", "/books")
        self.assertEqual((status, len(books)), (200, 2))

    def test_every_test_starts_empty_over_http(self):
        self.assertEqual(self.call("GET", "/books"), (200, []))
