"""docs/architecture.md against the code: every module documented, its
imports from the package exactly as listed, modules listed in an order in
which each imports only what comes before it (no cycles), and nose2 imported
by the nose2 adapter alone (no database)."""

import ast
import re
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "nose2_sqltx"
DOC = ROOT / "docs" / "architecture.md"
# "- **`name.py`** (imports `a`, `b`) — ...", or "- **`dialects/`** ..."
ENTRY = re.compile(r"^- \*\*`(?P<name>[\w./]+)`\*\*(?: \(imports (?P<imports>[^)]*)\))?", re.MULTILINE)


def unit_of(path: Path) -> str:
    """A module's name in the document: the dialects package is one unit."""
    relative = path.relative_to(PACKAGE)
    return "dialects" if relative.parts[0] == "dialects" else relative.stem


def package_imports(path: Path) -> tuple[set[str], set[str]]:
    """The units ``path`` imports from the package, and the top-level
    packages it imports from outside."""
    inside, outside = set(), set()
    depth = len(path.relative_to(PACKAGE).parts) - 1
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            where = list(path.relative_to(PACKAGE).parts[:depth][: depth - (node.level - 1)])
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                dotted = [*where, *name.split(".")]
                inside.add("dialects" if dotted[0] == "dialects" else dotted[0])
        elif isinstance(node, ast.ImportFrom) and node.module:
            outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return inside, outside


def documented() -> list[tuple[str, set[str]]]:
    entries = []
    for match in ENTRY.finditer(DOC.read_text()):
        name = match["name"].removesuffix(".py").removesuffix("/")
        listed = set(re.findall(r"`(\w+)`", match["imports"] or ""))
        entries.append((name, listed))
    return entries


class TestArchitectureDocument(unittest.TestCase):
    def setUp(self):
        self.entries = documented()
        self.code: dict[str, set[str]] = {}
        self.outside: dict[str, set[str]] = {}
        for path in sorted(PACKAGE.rglob("*.py")):
            inside, outside = package_imports(path)
            unit = unit_of(path)
            self.code.setdefault(unit, set()).update(inside - {unit})
            self.outside.setdefault(unit, set()).update(outside)

    def test_every_module_has_one_paragraph(self):
        names = [name for name, _ in self.entries]
        self.assertEqual(sorted(names), sorted(set(names)), "a module is documented twice")
        self.assertEqual(set(names), set(self.code))

    def test_imports_are_as_documented(self):
        for name, listed in self.entries:
            with self.subTest(module=name):
                self.assertEqual(listed, self.code[name])

    def test_each_module_imports_only_those_listed_before_it(self):
        seen: set[str] = set()
        for name, _ in self.entries:
            with self.subTest(module=name):
                self.assertLessEqual(self.code[name], seen, f"{name} imports a module documented after it")
            seen.add(name)

    def test_only_the_nose2_adapter_imports_nose2(self):
        importers = {unit for unit, outside in self.outside.items() if "nose2" in outside}
        self.assertEqual(importers, {"plugin"})

    def test_only_the_pytest_adapter_imports_pytest(self):
        importers = {unit for unit, outside in self.outside.items() if "pytest" in outside}
        self.assertEqual(importers, {"pytest_plugin"})

    def test_the_checker_sees_imports(self):
        # The checks above are only as good as package_imports: pin it on
        # modules whose imports are known.
        self.assertEqual(self.code["errors"], {"environment"})
        self.assertIn("savepoints", self.code["dialects"])
        self.assertIn("nose2", self.outside["plugin"])


if __name__ == "__main__":
    unittest.main()
