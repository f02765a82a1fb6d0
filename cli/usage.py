"""``atelier usage``: the answer of ``GET /v1/usage`` as two small tables."""

from __future__ import annotations

from atelier.client import Json


def usage_table(answer: Json) -> str:
    """Quotas (used of limit), then rate budgets (what is left now), then the owner's
    share of the workers. A limit of 0 is shown as ``none``."""
    lines = [f"{'quota':<14}{'used':>12}{'limit':>12}"]
    for quota in answer["quotas"]:
        show = _bytes if quota["unit"] == "bytes" else str
        limit = show(quota["limit"]) if quota["limit"] else "none"
        lines.append(f"{quota['name']:<14}{show(quota['usage']):>12}{limit:>12}")
    lines += ["", f"{'rate budget':<14}{'per minute':>12}{'burst':>8}{'left':>8}{'more in':>9}"]
    for budget in answer["rate_limits"]:
        if not budget["per_minute"]:
            lines.append(f"{budget['name']:<14}{'none':>12}")
            continue
        more = f"{budget['reset_seconds']} s" if budget["reset_seconds"] else "-"
        lines.append(
            f"{budget['name']:<14}{budget['per_minute']:>12}{budget['burst']:>8}"
            f"{budget['remaining']:>8}{more:>9}"
        )
    lines += [
        "",
        f"jobs running at once: {answer['max_running_jobs']} per job type; "
        f"fair-scheduling share: {answer['share']:g}",
    ]
    return "\n".join(lines)


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
