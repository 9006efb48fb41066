"""The format table: every profile format sysgate reads and writes, one :class:`Format` a line.

This is the one place that lists formats. The command line's ``--to``/``--from`` choices,
detection (:mod:`.detect`), reading and writing (:mod:`.registry`) and ``convert`` all read it.
To add a format: write ``sysgate/formats/<name>.py`` with the module interface below, then add
its line to :data:`FORMATS`.

A format module provides:

* ``loads(text, source, **options) -> object`` with a ``.policy`` (and ``.notes``), taking only
  the options its :attr:`Format.load_options` names;
* ``export(src, **options) -> Exported``; :attr:`Format.export_options` are those of its options
  that ``convert`` sets from the command line (``--thread``, ``--name``, ``--namespace``);
* optionally ``load_doc(doc, source, **options)``: ``loads`` of a JSON document already decoded
  (by detection), so that it is not decoded twice;
* ``detect_json(doc) -> float`` if :attr:`Format.json` (``doc`` is the decoded document) and
  ``detect_text(text, name) -> float`` if :attr:`Format.text` (``name`` is the file name or
  None): how sure the module is that the input is in its format, 0.0 (not it) to 1.0 (certain).

The table is declarations only, so that listing formats imports no format module: a module is
imported when one of its functions is first needed.
"""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

    from . import Exported

__all__ = ["Format", "FORMATS", "NAMES", "get", "by_extension", "LOAD_OPTIONS"]

#: Every option a reader may take (the union of the formats' ``load_options``).
LOAD_OPTIONS = ("arch", "arches", "caps", "thread", "base_dir", "unknown_names", "name", "rename")


class Format:
    """One profile format: its names, the files it is written in, the options it takes.

    ``json``/``text``: detection asks this format about decoded JSON documents / about other
    text. ``keeps_extras``: the format carries Docker's filter flags and notification listener
    settings (a :class:`~sysgate.formats.docker.DockerProfile`), not only the policy.
    ``compares``: it can say that two arguments compare with each other (Kafel).
    ``multiplexes``: the format's own tools turn rules on socket and IPC calls into rules on
    ``socketcall``/``ipc`` for the ABIs that have them, as libseccomp does (minijail's and
    Kafel's do not: sysgate writes those rules out for them).
    """

    __slots__ = ("name", "title", "module", "aliases", "extensions", "load_options", "export_options",
                 "json", "text", "keeps_extras", "compares", "multiplexes")

    def __init__(self, name: str, title: str, *, aliases: tuple[str, ...] = (), extensions: tuple[str, ...] = (),
                 load_options: tuple[str, ...] = (), export_options: tuple[str, ...] = (), json: bool = False,
                 text: bool = False, keeps_extras: bool = False, compares: bool = False,
                 multiplexes: bool = True) -> None:
        unknown = set(load_options) - set(LOAD_OPTIONS)
        if unknown:
            raise ValueError(f"format {name}: unknown load options {sorted(unknown)}")
        self.name = name
        self.title = title
        self.module = f"sysgate.formats.{name}"
        self.aliases = aliases
        self.extensions = extensions
        self.load_options = frozenset(load_options)
        self.export_options = export_options
        self.json = json
        self.text = text
        self.keeps_extras = keeps_extras
        self.compares = compares
        self.multiplexes = multiplexes

    def __repr__(self) -> str:
        return f"<Format {self.name}>"

    def impl(self) -> ModuleType:
        """The module implementing this format (imported on first use)."""
        import importlib

        return importlib.import_module(self.module)

    def detect_json(self, doc: object) -> float:
        return float(self.impl().detect_json(doc)) if self.json else 0.0

    def detect_text(self, text: str, name: str | None) -> float:
        return float(self.impl().detect_text(text, name)) if self.text else 0.0

    def loads(self, text: str, source: str, **options: Any) -> Any:
        """The module's ``loads``, given only the options this format takes (the others must be None)."""
        return self.impl().loads(text, source, **{k: v for k, v in options.items() if k in self.load_options})

    def export(self, src: Any, **options: Any) -> Exported:
        return self.impl().export(src, **options)  # type: ignore[no-any-return]


# Order: the command line's choices, then the tie-break of detection (the first format that is
# certain wins) and of file extensions.
FORMATS: tuple[Format, ...] = (
    Format("docker", "Docker/OCI seccomp JSON", extensions=(".json",), json=True, keeps_extras=True,
           load_options=("arch", "caps", "unknown_names")),
    Format("oci", "OCI runtime config.json", json=True, keeps_extras=True,
           load_options=("arch", "unknown_names")),
    Format("firecracker", "Firecracker seccompiler JSON", json=True,
           load_options=("arch", "arches", "thread"), export_options=("thread",)),
    Format("minijail", "minijail policy", extensions=(".policy",), text=True, multiplexes=False,
           load_options=("arch", "arches", "base_dir")),
    Format("kafel", "Kafel policy", text=True, compares=True, multiplexes=False,
           load_options=("arch", "arches", "base_dir")),
    Format("systemd", "systemd unit drop-in", extensions=(".conf",), text=True, load_options=("arch",)),
    Format("k8s", "Kubernetes", extensions=(".yaml", ".yml"), json=True,
           text=True, keeps_extras=True, load_options=("arch", "unknown_names", "name", "rename"),
           export_options=("name", "namespace")),
)

#: The format names, in table order.
NAMES: tuple[str, ...] = tuple(f.name for f in FORMATS)

_BY_NAME = {n: f for f in FORMATS for n in (f.name, *f.aliases)}


def get(name: str) -> Format:
    """The format called ``name`` (or one of its aliases); ValueError (a ProfileError) if none is."""
    try:
        return _BY_NAME[name]
    except KeyError:
        from . import ProfileError

        raise ProfileError(f"unknown format {name!r} (expected one of {', '.join(NAMES)})") from None


def by_extension(ext: str) -> Format | None:
    """The first format whose files end in ``ext`` (``.json``), or None."""
    return next((f for f in FORMATS if ext in f.extensions), None)
