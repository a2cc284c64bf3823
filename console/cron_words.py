"""A schedule's cron line in the reader's words ("每月的 1 号, 在 10:00"), for the ops pages.

cron-descriptor words the line in the page's language, except the names of days and months,
which it takes from the process's C locale (English); those are put in the page's language
with Babel's names, never by switching the process's locale (a server serves both languages).
A line it cannot read is shown as written.
"""

from __future__ import annotations

import calendar
import re
from functools import lru_cache

from babel import Locale
from cron_descriptor import ExpressionDescriptor, Options
from cron_descriptor.Exception import FormatException, MissingFieldException, WrongArgumentException

# console.i18n's locale names → cron-descriptor's.
_CRON_LOCALES = {"zh-CN": "zh_CN", "en": "en_US"}
_ENGLISH_DAYS = list(calendar.day_name)  # Monday first, as Babel's "wide" day names are keyed 0..6
_ENGLISH_MONTHS = list(calendar.month_name)[1:]


@lru_cache(maxsize=256)
def cron_words(line: str, locale: str) -> str:
    options = Options()
    options.locale_code = _CRON_LOCALES.get(locale, "en_US")
    options.use_24hour_time_format = True
    try:
        text = str(ExpressionDescriptor(line, options).get_description())
    except (FormatException, MissingFieldException, WrongArgumentException, ValueError, KeyError, IndexError):
        return line
    if locale == "en":
        return text
    babel = Locale.parse(_CRON_LOCALES.get(locale, "en_US"))
    names = {english: str(babel.days["format"]["wide"][i]) for i, english in enumerate(_ENGLISH_DAYS)}
    names |= {english: str(babel.months["format"]["wide"][i + 1]) for i, english in enumerate(_ENGLISH_MONTHS)}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return pattern.sub(lambda m: names[m.group(1)], text)
