"""Categories a tool mode or workflow can be filed under.

Two vocabularies, as in the original platform: MITRE ATT&CK tactics (`Attck`, values are
tactic ids) and BlackArch Linux tool groups (`BlackArch`, values are the group slugs
without the ``blackarch-`` prefix). Member names are part of the authoring API: packages
write ``Attck.Reconnaissance`` and ``BlackArch.Scanner``.
"""

from __future__ import annotations

import difflib
import enum

__all__ = ["Attck", "BlackArch", "Category", "parse_category"]


class Attck(enum.Enum):
    """MITRE ATT&CK tactics; the value is the tactic id."""

    Reconnaissance = "TA0043"
    ResourceDevelopment = "TA0042"
    InitialAccess = "TA0001"
    Execution = "TA0002"
    Persistence = "TA0003"
    PrivilegeEscalation = "TA0004"
    DefenseEvasion = "TA0005"
    CredentialAccess = "TA0006"
    Discovery = "TA0007"
    LateralMovement = "TA0008"
    Collection = "TA0009"
    CommandandControl = "TA0011"
    Exfiltration = "TA0010"
    Impact = "TA0040"
    NetworkEffects = "TA0038"
    RemoteServiceEffects = "TA0039"

    @property
    def title(self) -> str:
        """The tactic's name as MITRE writes it, e.g. ``"Command and Control"``."""
        return _ATTCK_TITLES[self]


# Kept outside the enum body because any plain attribute assigned there would become a member.
_ATTCK_TITLES: dict[Attck, str] = {
    Attck.Reconnaissance: "Reconnaissance",
    Attck.ResourceDevelopment: "Resource Development",
    Attck.InitialAccess: "Initial Access",
    Attck.Execution: "Execution",
    Attck.Persistence: "Persistence",
    Attck.PrivilegeEscalation: "Privilege Escalation",
    Attck.DefenseEvasion: "Defense Evasion",
    Attck.CredentialAccess: "Credential Access",
    Attck.Discovery: "Discovery",
    Attck.LateralMovement: "Lateral Movement",
    Attck.Collection: "Collection",
    Attck.CommandandControl: "Command and Control",
    Attck.Exfiltration: "Exfiltration",
    Attck.Impact: "Impact",
    Attck.NetworkEffects: "Network Effects",
    Attck.RemoteServiceEffects: "Remote Service Effects",
}


class BlackArch(enum.Enum):
    """BlackArch Linux tool groups; the value is the group slug without ``blackarch-``."""

    AntiForensic = "anti-forensic"
    Automation = "automation"
    Automobile = "automobile"
    Backdoor = "backdoor"
    Binary = "binary"
    Bluetooth = "bluetooth"
    CodeAudit = "code-audit"
    Config = "config"
    Cracker = "cracker"
    Crypto = "crypto"
    Database = "database"
    Debugger = "debugger"
    Decompiler = "decompiler"
    Defensive = "defensive"
    Disassembler = "disassembler"
    Dos = "dos"
    Drone = "drone"
    Exploitation = "exploitation"
    Fingerprint = "fingerprint"
    Firmware = "firmware"
    Forensic = "forensic"
    Fuzzer = "fuzzer"
    Gpu = "gpu"
    Hardware = "hardware"
    Honeypot = "honeypot"
    Ids = "ids"
    Keylogger = "keylogger"
    Malware = "malware"
    Misc = "misc"
    Mobile = "mobile"
    Networking = "networking"
    Nfc = "nfc"
    Packer = "packer"
    Proxy = "proxy"
    Radio = "radio"
    Recon = "recon"
    Reversing = "reversing"
    Scanner = "scanner"
    Sniffer = "sniffer"
    Social = "social"
    Spoof = "spoof"
    Stego = "stego"
    ThreatModel = "threat-model"
    Tunnel = "tunnel"
    Unpacker = "unpacker"
    Voip = "voip"
    Webapp = "webapp"
    Windows = "windows"
    Wireless = "wireless"


Category = Attck | BlackArch


def _fold(text: str) -> str:
    # Authors and CLI users spell the same category "Command and Control", "command-and-control"
    # or "CommandandControl"; folding case and separators lets one table serve all spellings.
    return "".join(ch for ch in text.casefold() if ch not in " -_")


def _spellings(member: Category) -> list[str]:
    if isinstance(member, Attck):
        return [member.value, member.name, member.title]
    return [member.value, member.name]


_LOOKUP: dict[type[Category], dict[str, Category]] = {
    cls: {_fold(s): m for m in cls for s in _spellings(m)} for cls in (Attck, BlackArch)
}
_PREFIXES: dict[str, type[Category]] = {
    "attck:": Attck,
    "attck-": Attck,
    "blackarch:": BlackArch,
    "blackarch-": BlackArch,
}


def parse_category(text: str) -> Category:
    """Turn a category written as text into its enum member.

    Accepts a tactic id or name (``"TA0043"``, ``"Reconnaissance"``,
    ``"Command and Control"``), a BlackArch slug or member name (``"scanner"``,
    ``"code-audit"``, ``"CodeAudit"``), optionally prefixed with ``attck:``,
    ``blackarch:`` or ``blackarch-``. Case does not matter.
    """
    if not isinstance(text, str):
        raise TypeError(f"category must be given as a str, got {type(text).__name__} {text!r}")
    stripped = text.strip()
    classes: tuple[type[Category], ...] = (Attck, BlackArch)
    rest = stripped
    for prefix, cls in _PREFIXES.items():
        if stripped.casefold().startswith(prefix):
            classes = (cls,)
            rest = stripped[len(prefix) :]
            break
    key = _fold(rest)
    for cls in classes:
        member = _LOOKUP[cls].get(key)
        if member is not None:
            return member
    raise ValueError(_unknown_message(text, classes))


def suggest_categories(text: str) -> list[Category]:
    """Up to five members whose spellings are close to ``text`` (prefix rules as in
    :func:`parse_category`)."""
    stripped = text.strip()
    classes: tuple[type[Category], ...] = (Attck, BlackArch)
    for prefix, cls in _PREFIXES.items():
        if stripped.casefold().startswith(prefix):
            classes, stripped = (cls,), stripped[len(prefix):]
            break
    spellings = {spelling.casefold(): member for cls in classes for member in cls
                 for spelling in _spellings(member)}
    typed = stripped.casefold()
    close = difflib.get_close_matches(typed, list(spellings), n=5, cutoff=0.6)
    # difflib misses abbreviations ("recon" for Reconnaissance); prefixes catch those.
    if len(typed) >= 3:
        close += [spelling for spelling in spellings if spelling.startswith(typed)]
    return list(dict.fromkeys(spellings[c] for c in close))[:5]


def _label(member: Category) -> str:
    # Canonical spellings (tactic id + name, BlackArch slug) that the user can copy.
    return f"{member.value} ({member.title})" if isinstance(member, Attck) else member.value


def _unknown_message(text: str, classes: tuple[type[Category], ...]) -> str:
    suggestions = [_label(member) for member in suggest_categories(text)]
    hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
    kinds = " or ".join(
        "an ATT&CK tactic id or name (e.g. TA0043, Reconnaissance)"
        if cls is Attck
        else "a BlackArch group (e.g. scanner, blackarch:webapp)"
        for cls in classes
    )
    return f"unknown category {text!r}: expected {kinds}{hint}"
