"""OneDrive naming rules (graph-notes section 12), shared by seeding and,
later, by create/rename/upload.

validate_name() raises InvalidName (400 invalidRequest, inner invalidPath);
check_path_length() raises InvalidName with inner pathIsTooLong.
Names are case-insensitive but case-preserving: name_key() is the lookup key.
"""

import re

FORBIDDEN_CHARS = set('"*:<>?/\\|')
RESERVED = {"con", "prn", "aux", "nul", ".lock", "desktop.ini"}
RESERVED |= {"com%d" % i for i in range(10)} | {"lpt%d" % i for i in range(10)}
MAX_PATH = 400                 # full decoded path incl. name must be < 400 chars
_CTRL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidName(ValueError):
    def __init__(self, message, inner="invalidPath"):
        super().__init__(message)
        self.inner = inner


def name_key(name):
    return name.lower()


def validate_name(name):
    if not isinstance(name, str) or name == "":
        raise InvalidName("The name must not be empty.")
    if name in (".", ".."):
        raise InvalidName("The name '%s' is not allowed." % name)
    bad = sorted(set(name) & FORBIDDEN_CHARS)
    if bad or _CTRL.search(name):
        raise InvalidName("The name '%s' contains a character that is not allowed." % name)
    if name != name.strip(" "):
        raise InvalidName("A name must not start or end with a space.")
    if name.endswith("."):
        raise InvalidName("A name must not end with a period.")
    low = name.lower()
    stem = low.split(".", 1)[0] if not low.startswith(".") else low
    if low in RESERVED or stem in RESERVED:
        raise InvalidName("The name '%s' is reserved." % name)
    if low.startswith("~$") or "_vti_" in low:
        raise InvalidName("The name '%s' is not allowed." % name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName("The name is not valid Unicode.")


def check_path_length(path_names):
    """path_names: names from the root down to (and including) the item."""
    total = sum(len(n) for n in path_names) + len(path_names)
    if total >= MAX_PATH:
        raise InvalidName("The path is too long.", inner="pathIsTooLong")
