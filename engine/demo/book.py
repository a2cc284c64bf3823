"""Generation of a synthetic book: one customer (with policies, claims and tier inputs) at a time.

Customer number ``k`` of seed ``S`` is drawn from a random generator seeded with
``(S, k)`` alone, so a book is the same whatever the chunking, and growing a book in
two runs gives the same customers as seeding it in one. Every date is relative to
``as_of`` (default: today), so the same N, S and as-of date give the same book.
"""

from __future__ import annotations

import bisect
import calendar
import hashlib
import itertools
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from faker.providers.person.zh_CN import Provider as ZhPerson

from engine.demo.scoring import OCCUPATION_CODES, age_band, score_customer
from engine.language.settings_model import TierConfig
from store.phones import is_valid_cn_mobile

CUSTOMER_PREFIX = "SEED-CUS"
POLICY_PREFIX = "SEED-POL"
CLAIM_PREFIX = "SEED-CLM"
NUMBER_WIDTH = 9

# Value segments by annual premium (yuan): (name, share, low, high). The mid segment
# (500–2000) is 62% of the book, the programme's reference mix (SPEC §2).
SEGMENTS: tuple[tuple[str, float, float, float], ...] = (
    ("prospect", 0.04, 0.0, 0.0),
    ("low", 0.22, 120.0, 499.0),
    ("mid", 0.62, 500.0, 2000.0),
    ("high", 0.095, 2001.0, 8000.0),
    ("top", 0.025, 8001.0, 60000.0),
)
_SEGMENT_ENGAGEMENT = {"prospect": 0.05, "low": 0.15, "mid": 0.4, "high": 0.7, "top": 0.9}

CITIES: tuple[tuple[str, float], ...] = (
    ("北京", 20), ("上海", 22), ("广州", 15), ("深圳", 15), ("成都", 13), ("杭州", 15),
)
CITY_TIER = {
    "北京": "tier1", "上海": "tier1", "广州": "tier1", "深圳": "tier1", "成都": "new_tier1", "杭州": "new_tier1",
}
TIME_ZONES: tuple[tuple[str, float, float], ...] = (
    # (zone, share, chance the customer reads English)
    ("Asia/Shanghai", 0.92, 0.03),
    ("Asia/Urumqi", 0.03, 0.02),
    ("Asia/Hong_Kong", 0.025, 0.3),
    ("America/Los_Angeles", 0.015, 0.7),
    ("Europe/London", 0.01, 0.7),
)
PRODUCT_MIX: tuple[tuple[str, float], ...] = (
    ("motor", 35), ("health", 25), ("accident", 15), ("life", 15), ("property", 10),
)
# Chance per policy-year of a claim, and the median claim amount (yuan), per product line.
CLAIM_RATE = {"motor": 0.16, "health": 0.2, "accident": 0.08, "property": 0.05, "life": 0.01}
CLAIM_MEDIAN = {"motor": 2500.0, "health": 4000.0, "accident": 1500.0, "property": 6000.0, "life": 60000.0}
# Consent sources as the insurer's systems record them.
SMS_SOURCES = ("policy_form", "app", "call_center", "branch_counter")
WECHAT_SOURCES = ("wechat_follow", "app")
EMAIL_SOURCES = ("web_form", "policy_form")
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("qq.com", 40), ("163.com", 25), ("126.com", 10), ("sina.com", 5), ("gmail.com", 10), ("outlook.com", 10),
)
_OPENID_ALPHABET = string.ascii_letters + string.digits + "-_"
# Share of birthdays moved to 29 February so that the leap-day rule is always exercised
# (a uniform draw gives about one in 1,500; this gives one in 250).
LEAP_DAY_SHARE = 0.004
# Mainland mobile prefixes (Faker's zh_CN list plus newer ones), each checked with phonenumbers.
_EXTRA_PREFIXES = (166, 173, 175, 176, 177, 178, 183, 184, 198, 199)


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


@dataclass(frozen=True)
class _Pools:
    """Name lists and weights, built once per run (calling Faker per row would be far too slow)."""

    surnames: list[str]
    surname_cum: list[float]
    given_male: list[str]
    given_female: list[str]
    roman_first: list[str]
    roman_last: list[str]
    mobile_prefixes: list[int]

    @classmethod
    def build(cls) -> _Pools:
        surnames = list(ZhPerson.last_names)
        weights = [float(w) for w in ZhPerson.last_names.values()]
        from faker.providers.phone_number.zh_CN import Provider as ZhPhone

        prefixes = sorted(set(ZhPhone.phonenumber_prefixes) | set(_EXTRA_PREFIXES))
        return cls(
            surnames=surnames,
            surname_cum=_cumulative(weights),
            given_male=list(ZhPerson.first_names_male),
            given_female=list(ZhPerson.first_names_female),
            roman_first=[n.lower() for n in ZhPerson.first_romanized_names],
            roman_last=[n.lower() for n in ZhPerson.last_romanized_names],
            mobile_prefixes=[p for p in prefixes if is_valid_cn_mobile(p * 10**8 + 12345678)],
        )


@dataclass
class CustomerDraft:
    """A customer and what hangs off it, before database ids are assigned."""

    number: int
    customer: dict[str, Any]
    policies: list[dict[str, Any]] = field(default_factory=list)
    # Each claim carries "_policy" = index into ``policies``.
    claims: list[dict[str, Any]] = field(default_factory=list)
    tier_change: dict[str, Any] = field(default_factory=dict)
    segment: str = ""


_CUMULATIVE: dict[tuple[tuple[str, float], ...], tuple[list[str], list[float]]] = {}


def _weighted(rng: random.Random, items: tuple[tuple[str, float], ...]) -> str:
    # Cumulative weights computed once per table: this runs several times per customer.
    entry = _CUMULATIVE.get(items)
    if entry is None:
        entry = _CUMULATIVE[items] = ([i[0] for i in items], _cumulative([i[1] for i in items]))
    names, cum = entry
    return names[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year + years, day=28)


class BookGenerator:
    def __init__(self, seed: int, as_of: date, tiers: TierConfig) -> None:
        if seed < 0:
            raise ValueError("seed must be >= 0")
        self.seed = seed
        self.as_of = as_of
        # 10:00 in Shanghai: the moment the book "was loaded", used for created_at and tier history.
        self.loaded_at = datetime.combine(as_of, time(2, 0), tzinfo=UTC)
        self.tiers = tiers
        self.pools = _Pools.build()
        self._rng = random.Random()  # nosec B311 # invents demo customers, nothing secret
        self._occupations = tuple((o, 1.0) for o in OCCUPATION_CODES if o not in ("retired", "student"))

    def _moment_between(self, rng: random.Random, start: datetime, end: datetime) -> datetime:
        if end <= start:
            return end
        seconds = int((end - start).total_seconds())
        return start + timedelta(seconds=rng.randrange(seconds + 1))

    def customer(self, number: int) -> CustomerDraft:
        rng = self._rng
        # Seeded from (seed, number) only: see the module docstring.
        rng.seed((self.seed << 40) + number)
        pools = self.pools
        as_of, loaded_at = self.as_of, self.loaded_at

        # Value segment and a latent engagement level that the activity inputs follow.
        u, acc = rng.random(), 0.0
        segment, premium_low, premium_high = SEGMENTS[-1][0], SEGMENTS[-1][2], SEGMENTS[-1][3]
        for name, share, low, high in SEGMENTS:
            acc += share
            if u < acc:
                segment, premium_low, premium_high = name, low, high
                break
        engagement = _clamp(_SEGMENT_ENGAGEMENT[segment] + rng.gauss(0, 0.2), 0.0, 1.0)

        # Person.
        female = rng.random() < 0.5
        surname = pools.surnames[bisect.bisect_right(pools.surname_cum, rng.random() * pools.surname_cum[-1])]
        given = rng.choice(pools.given_female if female else pools.given_male)
        age = int(_clamp(rng.gauss(42, 12), 18, 85))
        if rng.random() < LEAP_DAY_SHARE:
            year = as_of.year - age
            year -= year % 4  # a leap year (1904–2096)
            birthday = date(year, 2, 29)
        else:
            year = as_of.year - age - 1
            birthday = date(year, 1, 1) + timedelta(days=rng.randrange(366 if year % 4 == 0 else 365))
        age = as_of.year - birthday.year - ((as_of.month, as_of.day) < (birthday.month, birthday.day))

        zone_u, acc = rng.random(), 0.0
        timezone, english = TIME_ZONES[0][0], TIME_ZONES[0][2]
        for zone_name, share, en in TIME_ZONES:
            acc += share
            if zone_u < acc:
                timezone, english = zone_name, en
                break
        locale = "en" if rng.random() < english else "zh-CN"
        abroad = timezone in ("America/Los_Angeles", "Europe/London")
        city = _weighted(rng, CITIES)
        if age >= 60 and rng.random() < 0.6:
            occupation = "retired"
        elif age <= 23 and rng.random() < 0.5:
            occupation = "student"
        else:
            occupation = _weighted(rng, self._occupations)

        tenure = int(_clamp(rng.expovariate(1 / (1.5 + 6 * engagement)), 0, min(25, age - 18)))
        since = as_of - timedelta(days=365 * tenure + rng.randrange(365))
        since_moment = datetime.combine(since, time(2, 0), tzinfo=UTC)

        # Contact points.
        phone: str | None = None
        if rng.random() < 0.985:
            prefix = rng.choice(pools.mobile_prefixes)
            national = prefix * 10**8 + rng.randrange(10**8)
            while not is_valid_cn_mobile(national):  # rare: a range phonenumbers does not know
                national = prefix * 10**8 + rng.randrange(10**8)
            phone = f"+86{national}"
        email: str | None = None
        if rng.random() < (0.9 if abroad or locale == "en" else 0.3 + 0.3 * engagement):
            domain = _weighted(rng, EMAIL_DOMAINS)
            if domain == "qq.com" and rng.random() < 0.7:
                email = f"{rng.randrange(10**7, 10**10)}@qq.com"
            else:
                first, last = rng.choice(pools.roman_first), rng.choice(pools.roman_last)
                email = f"{first}.{last}{rng.randrange(1, 10000)}@{domain}"
        openid: str | None = None
        if rng.random() < (0.4 if abroad else 0.82):
            openid = "o" + "".join(rng.choices(_OPENID_ALPHABET, k=27))

        # Consents, with gaps: not everyone reachable on a channel has agreed to it.
        consents: dict[str, tuple[bool, str | None, datetime | None]] = {}
        for channel, reachable, rate, sources in (
            ("sms", phone is not None, 0.86, SMS_SOURCES),
            ("wechat", openid is not None, 0.9, WECHAT_SOURCES),
            ("email", email is not None, 0.65, EMAIL_SOURCES),
        ):
            if reachable and rng.random() < rate:
                consents[channel] = (True, rng.choice(sources), self._moment_between(rng, since_moment, loaded_at))
            else:
                consents[channel] = (False, None, None)
        consented = [c for c in ("sms", "wechat", "email") if consents[c][0]]
        if rng.random() < 0.1:
            preferred: list[str] = []  # no stated preference
        elif abroad:
            preferred = sorted(consented, key=lambda c: {"email": 0, "wechat": 1, "sms": 2}[c])
        elif age < 40 or engagement > 0.5:
            preferred = sorted(consented, key=lambda c: {"wechat": 0, "sms": 1, "email": 2}[c])
        else:
            preferred = sorted(consented, key=lambda c: {"sms": 0, "wechat": 1, "email": 2}[c])

        # Activity in the last 90 days.
        inactive = rng.random() < 0.5 * (1 - engagement)
        logins = 0 if inactive else max(0, round(rng.gauss(engagement * 50, 8)))
        minutes = round(logins * rng.uniform(3, 15))
        interactions = max(0, round(rng.gauss(engagement * 25, 6)))
        replies = max(0, round(rng.gauss(engagement * 10, 3)))
        if logins:
            last_active = loaded_at - timedelta(seconds=rng.randrange(int(86400 * (1 + 89 * (1 - engagement)))))
        else:
            last_active = loaded_at - timedelta(days=91 + rng.randrange(400))
        last_active = max(last_active, since_moment)

        # Policies: premium split over the active ones; some customers also have a lapsed one.
        if segment == "prospect":
            n_active = 0
        elif segment == "low":
            n_active = 1
        elif segment == "mid":
            n_active = 1 + (rng.random() < 0.5) + (rng.random() < 0.2)
        elif segment == "high":
            n_active = rng.randint(2, 4)
        else:
            n_active = rng.randint(3, 6)
        total = 0.0
        if n_active:
            total = premium_low * (premium_high / premium_low) ** rng.random()  # log-uniform in the segment
        shares = [rng.random() + 0.3 for _ in range(n_active)]
        policies: list[dict[str, Any]] = []
        for j, share in enumerate(shares, start=1):
            line = _weighted(rng, PRODUCT_MIX)
            premium = round(total * share / sum(shares), 2)
            if line == "life":
                start = max(since, as_of - timedelta(days=rng.randrange(365 * max(1, tenure) + 1)))
                expiry = _add_years(start, rng.choice((10, 15, 20))) - timedelta(days=1)
            else:
                # Annual policies started within the last year: expiries spread over the coming year.
                start = as_of - timedelta(days=rng.randrange(365))
                expiry = _add_years(start, 1) - timedelta(days=1)
            policies.append({**self._policy(number, j, line, premium, start, expiry, "active"),
                             **premium_dates(number, j, line, start, expiry, as_of)})
        if segment != "prospect" and rng.random() < 0.08:
            line = _weighted(rng, (("motor", 40), ("health", 30), ("accident", 30)))
            expiry = as_of - timedelta(days=1 + rng.randrange(720))
            start = _add_years(expiry + timedelta(days=1), -1)
            premium = round(rng.uniform(200, 1500), 2)
            policies.append(self._policy(number, len(policies) + 1, line, premium, start, expiry, "lapsed"))
        annual_premium = round(sum(p["annual_premium"] for p in policies if p["status"] == "active"), 2)

        # Claims against those policies.
        claims: list[dict[str, Any]] = []
        for index, policy in enumerate(policies):
            start_moment = datetime.combine(policy["start_date"], time(1, 0), tzinfo=UTC)
            end_moment = min(loaded_at, datetime.combine(policy["expiry_date"], time(15, 0), tzinfo=UTC))
            years = max(0.0, (end_moment - start_moment).total_seconds() / (365 * 86400))
            if end_moment <= start_moment or rng.random() >= CLAIM_RATE[policy["product_line"]] * min(years, 3) * 1.2:
                continue
            filed = self._moment_between(rng, start_moment, end_moment)
            amount = round(CLAIM_MEDIAN[policy["product_line"]] * rng.lognormvariate(0, 0.8), 2)
            settle_after = timedelta(days=rng.randint(1, 40), seconds=rng.randrange(86400))
            outcome = rng.random()
            if outcome < 0.07 and filed + settle_after <= loaded_at:
                status, settled = "rejected", None
            elif outcome < 0.95 and filed + settle_after <= loaded_at:
                status, settled = "settled", filed + settle_after
            else:
                status, settled = "filed", None
            claims.append(
                {
                    "external_id": f"{CLAIM_PREFIX}{number:0{NUMBER_WIDTH}d}-{len(claims) + 1}",
                    "_policy": index,
                    "filed_at": filed,
                    "settled_at": settled,
                    "amount": amount,
                    "status": status,
                }
            )

        attributes: dict[str, Any] = {
            "annual_premium": annual_premium,
            "policy_count": n_active,
            "product_lines": len({p["product_line"] for p in policies if p["status"] == "active"}),
            "tenure_years": tenure,
            "customer_since": since.isoformat(),
            "logins_90d": logins,
            "session_minutes_90d": minutes,
            "interactions_90d": interactions,
            "replies_90d": replies,
            "risk_questionnaire": int(_clamp(rng.gauss(40 + 50 * (engagement - 0.5), 18), 0, 100)),
            "claims_count": len(claims),
            "claims_settled": sum(1 for c in claims if c["status"] == "settled"),
            "referrals": int(rng.expovariate(1 / (0.2 + 4 * engagement**2))),
            "community_participation": int(rng.expovariate(1 / (0.3 + 8 * engagement**2))),
            "age_band": age_band(age),
            "occupation": occupation,
            "region": city,
            "city_tier": CITY_TIER[city],
            "gender": "F" if female else "M",
            "value_segment": segment,
        }
        # Scored from the same figures `journeys retier` reads back from the rows written here.
        tier, score, dims = score_customer(attributes, self.tiers, as_of, policies, claims)

        customer: dict[str, Any] = {
            "external_id": f"{CUSTOMER_PREFIX}{number:0{NUMBER_WIDTH}d}",
            "name": surname + given,
            "phone": phone,
            "email": email,
            "wechat_openid": openid,
            "id_number_enc": None,
            "birthday": birthday,
            "birth_md": birthday.month * 100 + birthday.day,
            "timezone": timezone,
            "locale": locale,
            "branch": f"{city}分公司",
            "tier": tier,
            "tier_score": score,
            "tier_updated_at": loaded_at,
            "advisor_id": None,
            "consent_sms": consents["sms"][0],
            "consent_sms_source": consents["sms"][1],
            "consent_sms_at": consents["sms"][2],
            "consent_wechat": consents["wechat"][0],
            "consent_wechat_source": consents["wechat"][1],
            "consent_wechat_at": consents["wechat"][2],
            "consent_email": consents["email"][0],
            "consent_email_source": consents["email"][1],
            "consent_email_at": consents["email"][2],
            **app_push(number, logins, loaded_at),
            "preferred_channels": preferred,
            "attributes": attributes,
            "last_active_at": last_active,
            "created_at": loaded_at,
            "updated_at": loaded_at,
            "anonymised_at": None,
        }
        tier_change = {
            "from_tier": None,
            "to_tier": tier,
            "score": score,
            "dimensions": dims,
            "reason": "seed",
            "changed_at": loaded_at,
        }
        return CustomerDraft(number, customer, policies, claims, tier_change, segment)

    @staticmethod
    def _policy(
        number: int, j: int, line: str, premium: float, start: date, expiry: date, status: str
    ) -> dict[str, Any]:
        return {
            "external_id": f"{POLICY_PREFIX}{number:0{NUMBER_WIDTH}d}-{j}",
            "product_line": line,
            "annual_premium": premium,
            "start_date": start,
            "expiry_date": expiry,
            "status": status,
            "premium_due_date": None,
            "grace_period_end": None,
        }


# Days after a missed premium during which the cover stays in force: 60 is the PRC norm for life and
# health policies (保险法第三十六条).
GRACE_DAYS = 60
# Share of life and health policies whose premium is paid monthly (月缴); the others pay yearly
# (life) or paid the whole year at the start (short-term health).
MONTHLY_SHARE = {"life": 0.35, "health": 0.3}


def premium_dates(number: int, j: int, line: str, start: date, expiry: date, as_of: date) -> dict[str, Any]:
    """The next premium due date and the end of its grace period of an active policy (issue M).

    A life policy pays each year on its anniversary (续期保费) or monthly on the day it started; a
    short-term health policy paid monthly (百万医疗月缴) likewise until it expires; every other
    policy was paid in full when it started and has no due date. Derived from the customer's
    number and the policy's, not drawn from the book's random stream, so that everything else in
    the book stays as it was."""
    share = MONTHLY_SHARE.get(line)
    if share is None:
        return {"premium_due_date": None, "grace_period_end": None}
    digest = hashlib.sha256(f"premium:{number}:{j}".encode()).digest()
    monthly = digest[0] < 256 * share
    if not monthly and line != "life":
        return {"premium_due_date": None, "grace_period_end": None}
    if monthly:
        due = _next_monthly(start, as_of)
    else:
        years = max(1, as_of.year - start.year)
        due = _add_years(start, years)
        while due <= as_of:
            years += 1
            due = _add_years(start, years)
    if due > expiry:
        return {"premium_due_date": None, "grace_period_end": None}
    return {"premium_due_date": due, "grace_period_end": due + timedelta(days=GRACE_DAYS)}


def _next_monthly(start: date, after: date) -> date:
    """The first monthly due date (the start's day of the month, or the month's last day) after ``after``."""
    year, month = after.year, after.month
    while True:
        last = calendar.monthrange(year, month)[1]
        due = date(year, month, min(start.day, last))
        if due > after and due > start:
            return due
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def app_push(number: int, logins: int, at: datetime) -> dict[str, Any]:
    """A customer who logs in to the app has a device registered with JPush, and four in five allowed
    notifications when they installed it (issue 19). Derived from the customer's number, not drawn
    from the book's random stream, so that everything else in the book stays as it was."""
    digest = hashlib.sha256(f"app-push:{number}".encode()).digest()
    if logins <= 0:
        return {"push_registration_id": None, "consent_push": False, "consent_push_source": None,
                "consent_push_at": None}
    allowed = digest[0] < 205
    return {"push_registration_id": digest[1:11].hex()[:19], "consent_push": allowed,
            "consent_push_source": "app" if allowed else None, "consent_push_at": at if allowed else None}
