"""Dotted key sets of nested config dicts: a shipped YAML must write out every key its dataclass has."""


def dotted_keys(d: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in d.items():
        keys.add(prefix + k)
        if isinstance(v, dict):
            keys |= dotted_keys(v, prefix + k + ".")
    return keys
