"""SYNTHETIC fundamentals and investor flows: nothing here is recorded data.

``HOGA_DATA_DIR`` has prices and volumes only. The TRs that need company accounts (PER/EPS/BPS/PBR/ROE of
FHKST01010100 and ka10001; the financial statements FHKST66430100/200/300/400/600/800) and investor flows
(FHKST01010900, FHPTJ04160001) are served from this seeded model, and every answer built from it carries the
response header ``X-Sandbox-Synthetic`` (capitalised: KIS's sample client reads only all-lower-case header names)
and is listed under ``synthetic_trs`` in ``GET /sandbox/clock``.

Statements (one company, per stock, deterministic from the seed and the code), in 억원 (100 million KRW):
- anchored on the recorded market cap of the replay day's previous close: annual revenue = market cap / a drawn
  price-to-sales ratio, operating margin and net margin drawn per company, quarterly revenue growing by a drawn
  yearly rate with seasonal noise;
- the balance sheet rolls forward quarter by quarter: equity(q) = equity(q-1) + net income(q) - dividends (paid in
  Q1, a drawn payout of the previous year's income); liabilities are a drawn ratio of equity; current assets /
  current liabilities split by drawn shares; capital stock = listed shares × a par value;
- ratios are computed from those statements (ROE = annualised income / average equity, EPS = income / shares,
  BPS = equity / shares, debt ratio = liabilities / equity, growth against the same period a year earlier), so
  statements, ratios and the quote's PER/PBR agree with each other and across periods;
- a quarter's statement is "published" ``QUARTER_LAG_DAYS`` after the quarter ends (the year's Q4 / annual
  statement ``ANNUAL_LAG_DAYS``): the replay day sees only what was published before it.
- Quarterly income-statement rows are cumulative from the start of the fiscal year (202509 = nine months), as KIS's
  quarterly statements are reported to be (UNCONFIRMED).

Investor flows per recorded day: the day's volume split into buys and sells of 개인 (individuals), 외국인
(foreigners), 기관계 (institutions, split further into its subtypes) and 기타법인 (other corporations), the nets
summing to zero over all four; values at the day's VWAP (recorded trading value / volume).
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass

from apps.sandbox.data import DailyBar

QUARTER_LAG_DAYS = 45
ANNUAL_LAG_DAYS = 90
FIRST_YEAR = 2018
EOK = 100_000_000  # 억원
SYNTHETIC_HEADER = "X-Sandbox-Synthetic"


@dataclass(frozen=True, slots=True)
class Period:
    """One quarter's figures (flows, in 억원) and the balance at its end."""

    year: int
    quarter: int
    revenue: float
    cost_of_sales: float
    sga: float
    depreciation: float
    operating_income: float
    non_operating_income: float
    non_operating_expense: float
    pretax_income: float
    net_income: float
    current_assets: float
    fixed_assets: float
    current_liabilities: float
    fixed_liabilities: float
    capital_stock: float
    capital_surplus: float
    retained_earnings: float
    borrowings: float
    inventories: float

    @property
    def stac_yymm(self) -> str:
        return f"{self.year}{self.quarter * 3:02d}"

    @property
    def end(self) -> dt.date:
        month = self.quarter * 3
        return dt.date(self.year, month, 30 if month in (6, 9) else 31)

    @property
    def total_assets(self) -> float:
        return self.current_assets + self.fixed_assets

    @property
    def total_liabilities(self) -> float:
        return self.current_liabilities + self.fixed_liabilities

    @property
    def equity(self) -> float:
        return self.capital_stock + self.capital_surplus + self.retained_earnings


@dataclass(frozen=True)
class Company:
    code: str
    shares: int
    quarters: tuple[Period, ...]  # oldest first

    def published(self, on: dt.date) -> list[Period]:
        out = []
        for p in self.quarters:
            lag = ANNUAL_LAG_DAYS if p.quarter == 4 else QUARTER_LAG_DAYS
            if p.end + dt.timedelta(days=lag) < on:
                out.append(p)
        return out


@functools.lru_cache(maxsize=256)
def company(code: str, shares: int, market_cap: int, seed: int, last_year: int) -> Company:
    """The synthetic company of ``code`` (see the module docstring)."""
    rng = random.Random(f"{seed}:fundamentals:{code}")
    shares = max(shares, 1_000_000)
    mcap_eok = max(market_cap / EOK, 100.0)
    annual_revenue = mcap_eok / rng.uniform(0.6, 3.0)
    growth = rng.uniform(-0.03, 0.15)
    gross_margin = rng.uniform(0.2, 0.45)
    op_margin = min(gross_margin - 0.05, rng.uniform(0.05, 0.22))
    tax_rate = rng.uniform(0.18, 0.25)
    payout = rng.uniform(0.15, 0.4)
    debt_ratio = rng.uniform(0.3, 1.5)
    par = 100 if shares > 1_000_000_000 else 500 if shares > 100_000_000 else 5000
    capital_stock = shares * par / EOK
    equity_target = mcap_eok / rng.uniform(0.8, 3.5)
    capital_surplus = max(0.0, equity_target * rng.uniform(0.05, 0.2))
    years = list(range(FIRST_YEAR, last_year + 1))
    quarters: list[Period] = []
    retained = max(equity_target * 0.5, equity_target - capital_stock - capital_surplus) * 0.7
    prev_year_income = 0.0
    n_quarters = len(years) * 4
    for i, (year, q) in enumerate((y, q) for y in years for q in (1, 2, 3, 4)):
        scale = (1 + growth) ** ((i - n_quarters + 8) / 4)
        revenue = annual_revenue / 4 * scale * rng.uniform(0.9, 1.1)
        cost = revenue * (1 - gross_margin * rng.uniform(0.92, 1.08))
        gross = revenue - cost
        operating = revenue * op_margin * rng.uniform(0.8, 1.2)
        sga = gross - operating
        depreciation = revenue * rng.uniform(0.03, 0.08)
        non_op_in = revenue * rng.uniform(0.005, 0.03)
        non_op_out = revenue * rng.uniform(0.005, 0.03)
        pretax = operating + non_op_in - non_op_out
        net = pretax * (1 - tax_rate)
        dividends = prev_year_income * payout if q == 1 else 0.0
        retained += net - dividends
        equity = capital_stock + capital_surplus + retained
        liabilities = max(equity * debt_ratio * rng.uniform(0.95, 1.05), 1.0)
        assets = equity + liabilities
        current_assets = assets * rng.uniform(0.35, 0.5)
        current_liabilities = liabilities * rng.uniform(0.5, 0.7)
        quarters.append(
            Period(
                year,
                q,
                revenue,
                cost,
                sga,
                depreciation,
                operating,
                non_op_in,
                non_op_out,
                pretax,
                net,
                current_assets,
                assets - current_assets,
                current_liabilities,
                liabilities - current_liabilities,
                capital_stock,
                capital_surplus,
                retained,
                liabilities * rng.uniform(0.2, 0.4),
                current_assets * rng.uniform(0.2, 0.4),
            )
        )
        if q == 4:
            prev_year_income = sum(p.net_income for p in quarters[-4:])
    return Company(code, shares, tuple(quarters))


def trailing(company_: Company, on: dt.date) -> dict[str, float]:
    """EPS (trailing four published quarters), BPS, ROE of the latest published quarter; zeros before any."""
    pub = company_.published(on)
    if not pub:
        return {"eps": 0.0, "bps": 0.0, "roe": 0.0, "sps": 0.0}
    last4 = pub[-4:]
    income = sum(p.net_income for p in last4) * 4 / len(last4)
    revenue = sum(p.revenue for p in last4) * 4 / len(last4)
    equity = pub[-1].equity
    avg_equity = (equity + pub[-5].equity) / 2 if len(pub) >= 5 else equity
    return {
        "eps": income * EOK / company_.shares,
        "bps": equity * EOK / company_.shares,
        "roe": income / avg_equity * 100 if avg_equity else 0.0,
        "sps": revenue * EOK / company_.shares,
    }


def statement_periods(company_: Company, on: dt.date, annual: bool) -> list[tuple[Period, list[Period]]]:
    """(period, the quarters its flow figures cover) newest first: annual = the four quarters of each published
    year; quarterly = every published quarter with the quarters of its year so far (cumulative)."""
    pub = company_.published(on)
    out: list[tuple[Period, list[Period]]] = []
    for p in pub:
        if annual and p.quarter != 4:
            continue
        covered = [x for x in pub if x.year == p.year and x.quarter <= p.quarter]
        out.append((p, covered))
    return out[::-1]


def _f(value: float) -> str:
    return f"{value:.2f}"


def _rate(now: float, before: float | None) -> str:
    if before is None or not before:
        return "0.00"
    return f"{(now - before) / abs(before) * 100:.2f}"


def statement_rows(company_: Company, on: dt.date, annual: bool, kind: str) -> list[dict[str, str]]:
    """``output`` rows of one statement TR (``kind``: balance, income, ratio, profit, stability, growth)."""
    rows = statement_periods(company_, on, annual)
    by_key = {(p.year, p.quarter): (p, cov) for p, cov in rows}
    out: list[dict[str, str]] = []
    for p, covered in rows:
        flow = {
            name: sum(getattr(x, name) for x in covered)
            for name in (
                "revenue",
                "cost_of_sales",
                "sga",
                "depreciation",
                "operating_income",
                "non_operating_income",
                "non_operating_expense",
                "pretax_income",
                "net_income",
            )
        }
        year_ago = by_key.get((p.year - 1, p.quarter))
        prev_flow = None
        prev_period = None
        if year_ago is not None:
            prev_period = year_ago[0]
            prev_flow = {
                k: sum(getattr(x, k) for x in year_ago[1]) for k in ("revenue", "operating_income", "net_income")
            }
        annualised = flow["net_income"] * 4 / len(covered)
        row: dict[str, str] = {"stac_yymm": p.stac_yymm}
        if kind == "balance":
            row.update(
                cras=_f(p.current_assets),
                fxas=_f(p.fixed_assets),
                total_aset=_f(p.total_assets),
                flow_lblt=_f(p.current_liabilities),
                fix_lblt=_f(p.fixed_liabilities),
                total_lblt=_f(p.total_liabilities),
                cpfn=_f(p.capital_stock),
                cfp_surp=_f(p.capital_surplus),
                prfi_surp=_f(p.retained_earnings),
                total_cptl=_f(p.equity),
            )
        elif kind == "income":
            row.update(
                sale_account=_f(flow["revenue"]),
                sale_cost=_f(flow["cost_of_sales"]),
                sale_totl_prfi=_f(flow["revenue"] - flow["cost_of_sales"]),
                depr_cost=_f(flow["depreciation"]),
                sell_mang=_f(flow["sga"]),
                bsop_prti=_f(flow["operating_income"]),
                bsop_non_ernn=_f(flow["non_operating_income"]),
                bsop_non_expn=_f(flow["non_operating_expense"]),
                op_prfi=_f(flow["pretax_income"]),
                spec_prfi="0.00",
                spec_loss="0.00",
                thtr_ntin=_f(flow["net_income"]),
            )
        elif kind == "ratio":
            row.update(
                grs=_rate(flow["revenue"], prev_flow["revenue"] if prev_flow else None),
                bsop_prfi_inrt=_rate(flow["operating_income"], prev_flow["operating_income"] if prev_flow else None),
                ntin_inrt=_rate(flow["net_income"], prev_flow["net_income"] if prev_flow else None),
                roe_val=_f(annualised / p.equity * 100 if p.equity else 0.0),
                eps=_f(flow["net_income"] * EOK / company_.shares),
                sps=_f(flow["revenue"] * EOK / company_.shares),
                bps=_f(p.equity * EOK / company_.shares),
                rsrv_rate=_f((p.capital_surplus + p.retained_earnings) / p.capital_stock * 100),
                lblt_rate=_f(p.total_liabilities / p.equity * 100 if p.equity else 0.0),
            )
        elif kind == "profit":
            row.update(
                cptl_ntin_rate=_f(annualised / p.total_assets * 100 if p.total_assets else 0.0),
                self_cptl_ntin_inrt=_f(annualised / p.equity * 100 if p.equity else 0.0),
                sale_ntin_rate=_f(flow["net_income"] / flow["revenue"] * 100 if flow["revenue"] else 0.0),
                sale_totl_rate=_f(
                    (flow["revenue"] - flow["cost_of_sales"]) / flow["revenue"] * 100 if flow["revenue"] else 0.0
                ),
            )
        elif kind == "stability":
            row.update(
                lblt_rate=_f(p.total_liabilities / p.equity * 100 if p.equity else 0.0),
                bram_depn=_f(p.borrowings / p.total_assets * 100 if p.total_assets else 0.0),
                crnt_rate=_f(p.current_assets / p.current_liabilities * 100 if p.current_liabilities else 0.0),
                quck_rate=_f(
                    (p.current_assets - p.inventories) / p.current_liabilities * 100 if p.current_liabilities else 0.0
                ),
            )
        else:  # growth
            row.update(
                grs=_rate(flow["revenue"], prev_flow["revenue"] if prev_flow else None),
                bsop_prfi_inrt=_rate(flow["operating_income"], prev_flow["operating_income"] if prev_flow else None),
                equt_inrt=_rate(p.equity, prev_period.equity if prev_period else None),
                totl_aset_inrt=_rate(p.total_assets, prev_period.total_assets if prev_period else None),
            )
        out.append(row)
    return out


# --- investor flows ---------------------------------------------------------------------------------------

#: Institutional subtypes of FHPTJ04160001 and their share of the institutions' flow.
ORGN_SUBTYPES = ("scrt", "ivtr", "pe_fund", "bank", "insu", "mrbn", "fund", "etc_orgt")


@dataclass(frozen=True, slots=True)
class Flows:
    """One day's buys and sells in shares per investor type (prsn, frgn, orgn, etc_corp) and the VWAP."""

    buys: dict[str, int]
    sells: dict[str, int]
    vwap: float
    orgn_split: dict[str, float]

    def net(self, who: str) -> int:
        return self.buys[who] - self.sells[who]


def day_flows(code: str, bar: DailyBar, seed: int) -> Flows:
    """The synthetic investor split of ``bar`` (nets over the four types sum to zero)."""
    rng = random.Random(f"{seed}:flows:{code}:{bar.date.isoformat()}")
    volume = bar.volume
    types = ("prsn", "frgn", "orgn", "etc_corp")

    def split() -> dict[str, int]:
        w = [rng.uniform(0.4, 0.65), rng.uniform(0.12, 0.35), rng.uniform(0.08, 0.25), rng.uniform(0.01, 0.05)]
        total = sum(w)
        parts = [int(volume * x / total) for x in w]
        parts[0] += volume - sum(parts)
        return dict(zip(types, parts, strict=True))

    buys, sells = split(), split()
    vwap = (bar.amount / volume) if bar.amount and volume else (bar.open + bar.high + bar.low + bar.close) / 4
    raw = [rng.uniform(0.5, 3.0) for _ in ORGN_SUBTYPES]
    orgn_split = {name: w / sum(raw) for name, w in zip(ORGN_SUBTYPES, raw, strict=True)}
    return Flows(buys, sells, vwap, orgn_split)


def million(shares: int, vwap: float) -> str:
    """Trading value in 백만원 (the investor TRs' unit; UNCONFIRMED)."""
    return str(int(round(shares * vwap / 1_000_000)))
