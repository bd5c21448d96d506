"""Webhook receivers: which URLs and addresses may be reached, and the message sent to them.

Pure functions; ``notify.WebhookNotifier`` does the I/O. Messages name the receiver by
``scheme://host:port`` only: a webhook path or query often holds a secret token.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from modelport.core.errors import InvalidInputError
from modelport.monitoring.alert_events import AlertEvent, format_value, format_window

__all__ = ["WebhookTarget", "check_addresses", "parse_webhook_url", "webhook_payload"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not set" (a firing alert's endsAt)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked webhook URL. ``ip``: the host is an IP literal. ``exact``: the host (or IP) is
    listed exactly in the allowed hosts, so its loopback / private addresses may be reached."""

    scheme: str
    host: str
    port: int
    path: str
    ip: bool
    exact: bool
    allowed_ips: frozenset[IPAddress]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_webhook_url(
    url: str, allowed_hosts: Iterable[str], headers: Mapping[str, str] | None = None
) -> WebhookTarget:
    """Check ``url`` against the scheme, user-info and allowed-host rules (module docstring of
    ``notify``). Raises ``InvalidInputError`` saying what to change."""
    names, patterns, ips = _allowed(allowed_hosts)
    if not isinstance(url, str) or _UNSAFE_URL.search(url):
        raise InvalidInputError(
            "the webhook URL holds spaces, control characters or backslashes; percent-encode them"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInputError(
            f"the webhook URL uses the {scheme or 'missing'!r} scheme; use http:// or https://"
        )
    if "@" in parts.netloc:
        raise InvalidInputError(
            "the webhook URL holds a user name or password; pass credentials as a header"
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidInputError("the webhook URL has an invalid port; use 1-65535")
    port = port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInputError("the webhook URL has no host; use http(s)://host/path")
    literal = _ip(host)
    shown = f"{scheme}://{parts.netloc.lower()}"
    if literal is not None:
        if _always_refused(literal):
            raise InvalidInputError(
                f"webhook {shown} is a link-local, multicast, unspecified or reserved address, "
                "which is never reached; use the receiver's own address"
            )
        exact = literal in ips
        host = str(literal)
    else:
        exact = host in names
        if not exact and not any(host.endswith(suffix) for suffix in patterns):
            raise InvalidInputError(
                f"webhook host of {shown} is not in the allowed hosts; add it (or a "
                "'*.domain' pattern) to the allowed webhook hosts"
            )
    if literal is not None and not exact:
        raise InvalidInputError(
            f"webhook {shown} is an IP address not listed in the allowed hosts; list it exactly"
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        ip=literal is not None,
        exact=exact,
        allowed_ips=frozenset(ips),
        headers=_headers(headers or {}),
    )


def check_addresses(target: WebhookTarget, addresses: Sequence[str]) -> list[str]:
    """The addresses ``target.host`` resolved to, if every one may be reached; else raises
    ``InvalidInputError`` (one bad address refuses the host: it may be a rebinding attempt)."""
    if not addresses:
        raise InvalidInputError(f"webhook host of {target.shown} resolved to no address")
    out = []
    for raw in addresses:
        ip = _ip(raw)
        if ip is None:
            raise InvalidInputError(f"webhook host of {target.shown} resolved to a non-IP answer")
        if _always_refused(ip):
            raise InvalidInputError(
                f"webhook host of {target.shown} resolves to a link-local, multicast, "
                "unspecified or reserved address, which is never reached"
            )
        if not _global(ip) and not (target.exact or ip in target.allowed_ips):
            raise InvalidInputError(
                f"webhook host of {target.shown} resolves to a loopback or private address; "
                "list the host or that address exactly in the allowed hosts to allow it"
            )
        out.append(str(ip))
    return out


def webhook_payload(events: Sequence[AlertEvent], *, receiver: str = "modelport") -> dict[str, Any]:
    """The Alertmanager webhook (version 4) message for ``events``."""
    alerts = [_alert(event) for event in events]
    labels = [a["labels"] for a in alerts]
    annotations = [a["annotations"] for a in alerts]
    return {
        "version": "4",
        "groupKey": f"{receiver}:alerts",
        "truncatedAlerts": 0,
        "status": "firing" if any(e.status == "firing" for e in events) else "resolved",
        "receiver": receiver,
        "groupLabels": {},
        "commonLabels": _common(labels),
        "commonAnnotations": _common(annotations),
        "externalURL": "",
        "alerts": alerts,
    }


def _alert(event: AlertEvent) -> dict[str, Any]:
    labels = {
        "alertname": event.rule,
        "rule": event.rule,  # as in the Prometheus rules, whose alertname cannot hold "-" or "."
        "severity": event.severity,
        "kind": event.kind,
        "model": event.model,
        "version": event.version,
    }
    if event.feature is not None:
        labels["feature"] = event.feature
    if event.statistic is not None:
        labels["statistic"] = event.statistic
    annotations = {
        "summary": event.summary,
        "threshold": format_value(event.kind, event.threshold),
        "window": format_window(event.window_s),
    }
    if event.value is not None:
        annotations["value"] = format_value(event.kind, event.value)
    return {
        "status": event.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(event.starts_at),
        "endsAt": _ZERO_TIME if event.ends_at is None else _rfc3339(event.ends_at),
        "generatorURL": "",
        "fingerprint": event.fingerprint,
    }


def _common(items: list[dict[str, str]]) -> dict[str, str]:
    if not items:
        return {}
    first = items[0]
    return {k: v for k, v in first.items() if all(item.get(k) == v for item in items[1:])}


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _allowed(entries: Iterable[str]) -> tuple[set[str], tuple[str, ...], set[IPAddress]]:
    if isinstance(entries, str):
        entries = [entries]
    names: set[str] = set()
    patterns: list[str] = []
    ips: set[IPAddress] = set()
    for raw in entries:
        entry = str(raw).strip().lower().rstrip(".")
        literal = _ip(entry.removeprefix("[").removesuffix("]"))
        if literal is not None:
            ips.add(literal)
        elif entry.startswith("*.") and _HOSTNAME.fullmatch(entry[2:]) and "." in entry[2:]:
            patterns.append(entry[1:])  # ".example.com"
        elif _HOSTNAME.fullmatch(entry):
            names.add(entry)
        else:
            raise InvalidInputError(
                f"allowed webhook host {entry[:60]!r} is not a host name, a '*.domain.tld' "
                "pattern or an IP address (write international names in punycode)"
            )
    if not (names or patterns or ips):
        raise InvalidInputError(
            "no allowed webhook hosts are configured; list the receiver's host name"
        )
    return names, tuple(patterns), ips


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    out = {"Content-Type": "application/json", "User-Agent": "modelport-alerts"}
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name) or re.search(r"[\x00-\x1f\x7f]", value):
            raise InvalidInputError(
                f"webhook header {name[:40]!r} has characters HTTP does not allow; remove them"
            )
        out[name] = value
    return out


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """``ip`` and the IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]  # ::ffff:a.b.c.d is that IPv4 address
    out: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            out.append(ip.sixtofour)
        if ip.teredo is not None:
            out.append(ip.teredo[1])
        if ip in _NAT64:
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _always_refused(ip: IPAddress) -> bool:
    return any(
        a.is_link_local
        or a.is_multicast
        or a.is_unspecified
        or (a.is_reserved and not a.is_loopback)
        for a in _embedded(ip)
    )


def _global(ip: IPAddress) -> bool:
    return all(a.is_global for a in _embedded(ip))
