"""The layout rules that import-linter (``make lint``) does not express, checked on the source tree with ``ast``.

- an import inside a function is the exception: each one says why on its line or in a comment heading its
  block of imports (``# deferred: <why>``);
- no two apps import each other, and no module imports another app's API layer (``apis``);
- the live quote store (quote, book and feed-status keys in Redis) is read in ``apps/live/quotes.py`` only
  (the feed's publisher writes it);
- channel-layer messages leave through ``apps/core/realtime.py`` only, and group names are built in
  ``apps/core/groups.py`` only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "apps"


def _modules() -> list[tuple[Path, str, ast.Module]]:
    found = []
    for path in sorted(APPS.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        found.append((path, text, ast.parse(text)))
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute module names an import statement names (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = _module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it sits inside a function."""
    out: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.append((child, in_function))
            walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    walk(tree, False)
    return out


def _app(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "apps" else None


def _explained(lines: list[str], index: int) -> bool:
    """The import on ``lines[index]`` says why: on its own line, or in a comment line heading its block of
    imports (blank lines and other imports in between)."""
    if "# deferred:" in lines[index]:
        return True
    for line in reversed(lines[:index]):
        stripped = line.strip()
        if stripped.startswith("#"):
            return "# deferred:" in stripped
        if stripped and not stripped.startswith(("from ", "import ")):
            return False
    return False


def test_every_import_inside_a_function_says_why() -> None:
    unexplained = []
    for path, text, tree in _modules():
        lines = text.splitlines()
        for node, in_function in _imports(tree):
            if not in_function or not any(_app(t) for t in _targets(path, node)):
                continue
            if not _explained(lines, node.lineno - 1):
                unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not unexplained, f"imports inside functions without a '# deferred: <why>' comment: {unexplained}"


def test_no_two_apps_import_each_other_and_no_app_imports_another_apps_api() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    api_imports = []
    for path, _text, tree in _modules():
        source = _app(_module_name(path))
        for node, _ in _imports(tree):
            targets = _targets(path, node)
            apps = {_app(t) for t in targets} - {None, source}
            edges[source or ""].update(a for a in apps if a)
            if any(t.split(".")[-1] == "apis" and _app(t) != source for t in targets if _app(t)):
                api_imports.append(str(path.relative_to(ROOT)))
    two_way = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, set())})
    assert not two_way, f"apps importing each other: {two_way}"
    assert not api_imports, f"modules importing another app's API layer: {api_imports}"


def _names_in(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }


def test_the_quote_store_is_read_in_one_module() -> None:
    allowed = {"apps/live/quotes.py", "apps/live/realtime/keys.py", "apps/live/realtime/publisher.py"}
    readers = sorted(
        str(path.relative_to(ROOT))
        for path, _text, tree in _modules()
        if {"QUOTES_HASH", "BOOKS_HASH", "FEED_STATUS_KEY"} & _names_in(tree)
        and str(path.relative_to(ROOT)) not in allowed
    )
    assert not readers, f"modules reading the quote store directly (use apps.live.quotes): {readers}"


def test_channel_layer_sends_and_group_names_have_one_home() -> None:
    senders, namers = [], []
    for path, text, tree in _modules():
        rel = str(path.relative_to(ROOT))
        calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        if {"group_send", "send"} & calls and "channel_layer" in text and rel != "apps/core/realtime.py":
            if "get_channel_layer" in text or ".group_send(" in text:
                senders.append(rel)
        if rel != "apps/core/groups.py" and any(
            isinstance(n, ast.JoinedStr)
            and n.values
            and isinstance(n.values[0], ast.Constant)
            and str(n.values[0].value).startswith(("quotes.", "orders.", "conditions.", "market.", "user."))
            for n in ast.walk(tree)
        ):
            namers.append(rel)
    assert not senders, f"channel-layer sends outside apps/core/realtime.py: {senders}"
    assert not namers, f"group names built outside apps/core/groups.py: {namers}"


def test_apps_above_trading_are_never_imported_by_it() -> None:
    """Notifications and portfolio analytics sit above trading: they hear of order events through trading's
    ``order_events_committed`` signal and read its models; trading (and every lower app) never imports them."""
    above = {"notifications", "portfolio", "watchlists", "pages"}
    below = {"trading", "live", "marketdata", "brokers", "core", "conditions", "brokerage", "fundamentals", "sandbox"}
    wrong = []
    for path, _text, tree in _modules():
        source = _app(_module_name(path))
        if source not in below:
            continue
        for node, _ in _imports(tree):
            if any(_app(t) in above for t in _targets(path, node)):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wrong, f"lower apps importing notifications/portfolio/watchlists/pages: {wrong}"


def test_every_app_has_a_place_in_the_layers() -> None:
    """A new app (e.g. ``apps.watchlists``) must be placed in the import-linter layers (pyproject.toml) or be the
    sandbox, so that its dependencies are checked one way like the others'."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    rows = next(c["layers"] for c in config if c["type"] == "layers" and "apps.pages" in c["layers"])
    layers = [{name.strip() for name in row.split("|")} for row in rows]  # "a | b": independent siblings

    def level(app: str) -> int:
        return next(i for i, row in enumerate(layers) if app in row)

    apps = {f"apps.{p.name}" for p in APPS.iterdir() if (p / "__init__.py").is_file()}
    assert apps - set().union(*layers) == {"apps.sandbox"}
    assert level("apps.watchlists") < level("apps.marketdata")  # lists hold stocks
