"""What a notebook's code cells import, define and use, read with ``ast`` (nothing is run).

IPython syntax (``%matplotlib inline``, ``!pip ...``) is first turned into plain Python by
IPython's own transformer, so every cell a kernel accepts can be read.
"""

import ast
import builtins
import sys


_IPYTHON_NAMES = {"get_ipython", "display", "In", "Out", "exit", "quit"}  # a kernel provides them


def python_source(cell_source):
    """``cell_source`` with IPython magics and shell escapes turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell_source)


def parse(cell_source, where="cell"):
    try:
        return ast.parse(python_source(cell_source))
    except SyntaxError as error:
        raise SyntaxError(f"{where}: {error.msg} (line {error.lineno})") from None


def imported_modules(tree):
    """Top-level names of the modules ``tree`` imports (``import a.b`` gives "a"); relative
    imports are left out."""
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def third_party(modules):
    """``modules`` less the standard library's."""
    return {m for m in modules if m not in sys.stdlib_module_names and m != "__future__"}


def defined_names(tree):
    """Names a cell binds in the notebook's namespace (top level: not inside functions)."""
    names = set()

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def free_names(tree):
    """Names a cell reads but does not bind anywhere in itself (arguments, loop variables and
    locals included), so they must come from an earlier cell or from builtins."""
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
    return loaded - bound - set(dir(builtins)) - _IPYTHON_NAMES
