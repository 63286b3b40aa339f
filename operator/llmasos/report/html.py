"""The report as one self-contained HTML page: inline CSS and SVG, no script, no external URL.

A Content-Security-Policy of `default-src 'none'` makes the browser refuse any fetch the page might still attempt,
so "readable offline" is enforced rather than hoped for. Every value from the cluster is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from llmasos.api.units import energy_text, moment_text
from llmasos.planning.timing.carbon_window import REPLAY_NOTE, REPLAY_SOURCE
from llmasos.report.aggregate import Report, TokenEnergy, Totals, energy_per_token
from llmasos.report.caps import cap_cost, cap_explanation
from llmasos.report.methodology import CHOICES, FORMULAS, DataSource, data_sources
from llmasos.report.model import JobRecord
from llmasos.report.svg import columns, hbars, mass

CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;line-height:1.4}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
.meta{color:#666}.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
table{border-collapse:collapse;width:100%;font-size:12px;margin:8px 0}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.neg{color:#c62828}
pre{white-space:pre-wrap;font-size:11px;background:#f8f8f8;padding:8px}dt{font-weight:600;margin-top:6px}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "&ndash;"
    text = f"{value:,.{digits}f}"
    return f'<span class="neg">{text}</span>' if value < 0 else text


def _card(label: str, value: str, note: str = "") -> str:
    return f'<div class="card"><span>{escape(label)}</span><b>{value}</b><span>{escape(note)}</span></div>'


def _cost(t: Totals) -> str:
    return ", ".join(f"{v:,.2f} {escape(k)}" for k, v in t.cost_by_currency.items()) or "&ndash;"


GROUP_HEAD = ("jobs", "energy kWh", "facility kWh", "gCO2e", "g/kWh", "saved: time shift gCO2e",
              "saved: pool gCO2e", "saved: power caps gCO2e", "J/token", "offset t", "offset cost")


def _group_table(title: str, groups: dict[str, Totals]) -> str:
    head = "".join(f"<th>{h}</th>" for h in (title, *GROUP_HEAD))
    rows = []
    for key, t in groups.items():
        cells = (str(t.jobs), _num(t.energy_kwh), _num(t.facility_kwh), _num(t.grams, 1),
                 _num(t.average_intensity, 1), _num(t.time_shift_g, 1), _num(t.pool_choice_g, 1),
                 _num(t.power_cap_g, 1), _num(t.joules_per_token, 4), _num(t.offset_tonnes, 6), _cost(t))
        rows.append(f"<tr><td>{escape(key)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


TOKEN_HEAD = ("jobs", "jobs with tokens", "tokens", "energy kWh", "J/token", "lowest job J/token",
              "highest job J/token")


def _token_table(title: str, rows: Sequence[TokenEnergy]) -> str:
    """Energy per token of each model or namespace: over the jobs whose workers counted tokens only."""
    head = "".join(f"<th>{h}</th>" for h in (title, *TOKEN_HEAD))
    body = []
    for r in rows:
        cells = (str(r.jobs), str(r.token_jobs), _num(r.tokens or None, 0), _num(r.energy_kwh if r.tokens else None),
                 _num(r.joules_per_token, 4), _num(r.lowest, 4), _num(r.highest, 4))
        body.append(f"<tr><td>{escape(r.key)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _source(source: str) -> str:
    return escape(source + (" (historical replay)" if source == REPLAY_SOURCE else ""))


def _jobs_table(jobs: Sequence[JobRecord]) -> str:
    head = ("namespace/name", "team", "model", "pool", "zone", "start", "kWh", "PUE", "gCO2e", "run-now gCO2e",
            "saved %", "cap saved kWh", "J/token", "source", "factors", "estimated")
    rows = []
    for j in jobs:
        pct = 100.0 * j.time_shift_saved_g / j.run_now_grams if j.run_now_grams > 0 else None
        cells = (escape(j.team), escape(j.model), escape(j.pool), escape(j.zone), escape(moment_text(j.start)),
                 _num(j.energy_kwh), _num(j.pue, 2), _num(j.grams, 1), _num(j.run_now_grams, 1), _num(pct, 1),
                 _num(j.power_cap_saved_kwh, 4), _num(j.joules_per_token, 4), _source(j.source),
                 escape(j.emission_factor_type), "yes" if j.is_estimated else "no")
        rows.append(f"<tr><td>{escape(j.namespace)}/{escape(j.name)}</td>"
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{''.join(rows)}</table>"


def _charts(report: Report) -> str:
    ns = report.groups["namespace"]
    labels = list(ns)
    t = report.totals
    charts = [
        hbars("Emissions by namespace", labels, [("actual", [ns[k].grams for k in labels]),
                                                 ("had it run now", [ns[k].run_now_grams for k in labels])], "gCO2e"),
        hbars("Savings by lever", ["time shifting", "pool choice", "power caps"],
              [("saved", [t.time_shift_g, t.pool_choice_g, t.power_cap_g])], "gCO2e"),
        hbars("Energy by team", list(report.groups["team"]),
              [("IT energy", [v.energy_kwh for v in report.groups["team"].values()])], "kWh"),
        hbars("Emissions by model", list(report.groups["model"]),
              [("actual", [v.grams for v in report.groups["model"].values()])], "gCO2e"),
        columns("Emissions by start day (UTC)", list(report.groups["day"]),
                [v.grams for v in report.groups["day"].values()], "gCO2e"),
    ]
    return '<div class="charts">' + "".join(f"<figure>{c}</figure>" for c in charts) + "</div>"


def _methodology(report: Report, sources: Sequence[DataSource]) -> str:
    formulas = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in FORMULAS)
    choices = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in CHOICES)
    used = ", ".join(f"{escape(k)} ({v} jobs)" for k, v in report.sources.items()) or "&ndash;"
    factors = ", ".join(f"{escape(k)} ({v} jobs)" for k, v in report.factor_types.items()) or "&ndash;"
    pue = f"{report.pue_range[0]:.3f} &ndash; {report.pue_range[1]:.3f}" if report.pue_range else "&ndash;"
    mixed = ('<p class="neg">This report mixes lifecycle and direct emission factors: totals add numbers of '
             "different scope.</p>" if len([k for k in report.factor_types if k != "unknown"]) > 1 else "")
    data = "".join(
        f"<h4>{escape(s.title)} <small>({escape(s.folder)})</small></h4><p>Licenses: "
        + (", ".join(f"{escape(lic)} ({escape(f)})" for f, lic in s.licenses) or "see SOURCE.md")
        + f"</p><details><summary>SOURCE.md</summary><pre>{escape(s.text)}</pre></details>"
        for s in sources)
    return (f"<h2 id='methodology'>Methodology</h2><h3>Formulas</h3><dl>{formulas}</dl><h3>Choices</h3><dl>{choices}"
            f"</dl><h3>In this report</h3><p>Intensity sources: {used}. Emission factors: {factors}. PUE used: {pue}."
            f"</p>{mixed}<p>Live intensity comes from Electricity Maps (API v3, under its own terms) when the operator "
            f"has a token; otherwise from the data shipped with LLMasOS:</p>{data}")


def render_html(report: Report, title: str = "LLMasOS sustainability report") -> str:
    t = report.totals
    period = f"{escape(report.period[0])} to {escape(report.period[1]) or 'now'}" if report.period else "no jobs"
    cards = "".join((
        _card("IT energy", energy_text(t.energy_kwh), f"facility {energy_text(t.facility_kwh)}"),
        _card("Emissions", mass(t.grams), f"{_num(t.average_intensity, 1)} gCO2e/kWh average"),
        _card("Saved by time shifting", mass(t.time_shift_g),
              f"{t.time_shift_percent:.1f} % of run-now" if t.time_shift_percent is not None else ""),
        _card("Saved by pool choice", mass(t.pool_choice_g)),
        (_card("Power caps cost", mass(-t.power_cap_g), f"{-t.power_cap_kwh:,.4f} kWh more than uncapped")
         if cap_cost(t.power_cap_g)
         else _card("Saved by power caps", mass(t.power_cap_g), f"{t.power_cap_kwh:,.4f} kWh")),
        _card("Energy per token", f"{t.joules_per_token:.4f} J" if t.joules_per_token else "&ndash;",
              f"{t.tokens:,.0f} tokens" if t.tokens else "no job reported tokens"),
        _card("Offsets", f"{t.offset_tonnes:,.6f} t", f"cost {_cost(t)}"),
    ))
    why = cap_explanation(t.power_cap_g, report.jobs)
    cap_note = f"<p class='meta'>{escape(why[0].upper() + why[1:])}.</p>" if why else ""
    replayed = [j for j in report.jobs if j.source == REPLAY_SOURCE]
    replay = (f"<p class='meta warn'>{len(replayed)} of {len(report.jobs)} job(s) were accounted on the shipped "
              f"trace: {escape(REPLAY_NOTE)}. Their emissions and savings illustrate the method; they are not "
              "measurements of today's grid.</p>" if replayed else "")
    missing = (f"<p class='meta'>{len(report.without_accounting)} job(s) without accounting yet (not started): "
               + ", ".join(escape(f"{j.namespace}/{j.name}") for j in report.without_accounting) + "</p>"
               if report.without_accounting else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{CSS}</style></head>
<body><h1>{escape(title)}</h1>
<p class="meta">Generated {escape(moment_text(report.generated_at))} &middot; {t.jobs} job(s)
&middot; {period} &middot; location-based &middot; see <a href="#methodology">methodology</a></p>
<div class="cards">{cards}</div>{replay}{cap_note}{missing}
<h2>Charts</h2>{_charts(report)}
<h2>By namespace</h2>{_group_table("namespace", report.groups["namespace"])}
<h2>By team</h2>{_group_table("team", report.groups["team"])}
<h2>By model</h2>{_group_table("model", report.groups["model"])}
<h2>Energy per token</h2><p class="meta">IT energy over the tokens the workers counted (status.carbon.tokens), of the
jobs that counted tokens only; the lowest and highest job show the spread behind each figure.</p>
{_token_table("model", energy_per_token(report.jobs, "model"))}
{_token_table("namespace", energy_per_token(report.jobs, "namespace"))}
<h2>Jobs</h2>{_jobs_table(report.jobs)}
{_methodology(report, data_sources())}
</body></html>
"""
