"""``import seccomp`` for code written against libseccomp's bindings: sysgate's pure-Python module.

This directory is meant for ``PYTHONPATH`` (see ``sysgate.compat.shim_path()``); it is not a
package. The module object *is* :mod:`sysgate.compat.seccomp`, so both names share state.
"""
import sys

import sysgate.compat.seccomp as _impl

sys.modules[__name__] = _impl
