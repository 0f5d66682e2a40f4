"""Shared helpers of the fake amoCRM: deterministic draws, Cyrillic name pools, id encodings.

Every generated value is a pure function of (seed, salt, index), drawn through R below, so a
row can be rebuilt from its index at any time and two runs with the same --seed serve the same
bytes. Nothing here touches the network or the clock.
"""

import json

M64 = 0xFFFFFFFFFFFFFFFF
GOLD = 0x9E3779B97F4A7C15
_LOW = 1 << 40

# The fake's default "now" for generated data (2024-06-01 00:00:00 UTC): fixed, so data do not
# depend on the wall clock. --now changes it.
DEFAULT_NOW = 1717200000
DAY = 86400


def mix(x):
    """splitmix64 finaliser: a well-spread 64-bit hash of x."""
    x = (x + GOLD) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def salt_of(seed, name):
    """A per-(seed, purpose) salt. name is a str; hashed by hand because str hash() is random."""
    h = seed & M64
    for ch in name.encode():
        h = mix(h ^ ch)
    return h


class R:
    """A cheap deterministic draw pool for one row: R(salt, i).n(k) is in [0, k)."""
    __slots__ = ("p", "s")

    def __init__(self, salt, i):
        s = mix(salt ^ ((i * GOLD) & M64))
        self.s = s
        self.p = s | (1 << 63)

    def n(self, k):
        p = self.p
        if p < _LOW:
            self.s = s = mix(self.s)
            p = (p << 64) | s
        self.p, v = divmod(p, k)
        return v

    def pct(self, x):
        """True with probability x percent (n(100) < x, inlined: it is called a lot)."""
        p = self.p
        if p < _LOW:
            self.s = s = mix(self.s)
            p = (p << 64) | s
        self.p, v = divmod(p, 100)
        return v < x

    def pick(self, seq):
        p = self.p
        if p < _LOW:
            self.s = s = mix(self.s)
            p = (p << 64) | s
        self.p, v = divmod(p, len(seq))
        return seq[v]

    def between(self, lo, hi):
        """An int in [lo, hi]."""
        return lo + self.n(hi - lo + 1) if hi > lo else lo


def dumps(obj):
    """Compact JSON with raw UTF-8 (the real API does not \\u-escape Cyrillic)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# ---- ids that are strings in the real API ---------------------------------------------------

_B32 = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case (as seen in events)


_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def b32(n, width):
    """n as `width` base32 digits (width even), most significant first."""
    out = []
    for _ in range(width // 2):
        out.append(_B32_PAIRS[n & 1023])
        n >>= 10
    out.reverse()
    return "".join(out)


def unb32(s):
    n = 0
    for ch in s:
        v = _B32.find(ch)
        if v < 0:
            raise ValueError(s)
        n = (n << 5) | v
    return n


def event_id(salt, index, created_at):
    """A 26-char ULID-like id: 10 chars of time (ms), 8 chars of hash, 8 chars of the index.

    Sorting the strings sorts by time; event_index() recovers the index.
    """
    ms = created_at * 1000 + (index % 1000)
    return b32(ms, 10) + b32(mix(salt ^ index) & ((1 << 40) - 1), 8) + b32(index, 8)


def event_index(eid):
    """The index encoded by event_id(), or None for a string that is not one of ours."""
    if not isinstance(eid, str) or len(eid) != 26:
        return None
    try:
        return unb32(eid[18:])
    except ValueError:
        return None


def hex_uid(salt, index, width=40):
    """A hex string id (unsorted uid, chat uuids) derived from an index."""
    out, i = [], 0
    while len(out) * 16 < width:
        out.append("%016x" % mix(salt ^ (index * 131 + i)))
        i += 1
    return "".join(out)[:width]


def uuid_of(salt, index):
    h = hex_uid(salt, index, 32)
    return "%s-%s-4%s-a%s-%s" % (h[0:8], h[8:12], h[13:16], h[17:20], h[20:32])


# ---- name pools ------------------------------------------------------------------------------

FIRST_M = ["Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья",
           "Кирилл", "Михаил", "Никита", "Матвей", "Роман", "Егор", "Арсений", "Иван", "Денис",
           "Евгений", "Тимофей", "Владимир", "Павел", "Глеб", "Фёдор", "Юрий"]
FIRST_F = ["Анастасия", "Мария", "Анна", "Виктория", "Екатерина", "Наталья", "Марина",
           "Полина", "София", "Дарья", "Алиса", "Ксения", "Александра", "Елена", "Ольга",
           "Татьяна", "Юлия", "Вера", "Ирина", "Светлана", "Людмила", "Алёна"]
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
        "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
        "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
        "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв"]
COMPANY_KIND = ["ООО", "АО", "ИП", "ПАО", "ЗАО", "АНО"]
COMPANY_WORD = ["Ромашка", "Вектор", "Гарант", "Меридиан", "Альфа-Софт", "ТехноСервис", "Орбита",
                "Северный ветер", "Лингва", "Эрудит", "СтройИнвест", "Медиагруппа", "Парус",
                "Созвездие", "Кедр", "Радуга", "Пик", "Глобус", "Атлант", "Восход"]
COURSES = ["Английский язык", "Немецкий язык", "Подготовка к ЕГЭ", "Подготовка к ОГЭ",
           "Математика", "Программирование на Python", "Робототехника", "Шахматы",
           "Китайский язык", "Французский язык", "Рисование", "Скорочтение", "IELTS"]
LEVELS = ["для детей 7–9 лет", "для подростков", "для взрослых", "индивидуально",
          "интенсив", "мини-группа", "онлайн", "выходного дня"]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург",
          "Нижний Новгород", "Самара", "Краснодар", "Пермь", "Воронеж"]
STREETS = ["ул. Ленина", "пр-т Мира", "ул. Садовая", "ул. Пушкина", "Набережная ул.",
           "ул. Гагарина", "ул. Советская", "Школьная ул."]
NOTE_TEXTS = ["Перезвонить после обеда", "Клиент просит скидку 10%", "Отправили КП на почту",
              "Интересуется группой выходного дня", "Нужна консультация методиста",
              "Оплатит до конца недели", "Хочет пробный урок", "Уточнить расписание",
              "Не дозвонились, абонент недоступен", "Договорились о встрече в офисе"]
TASK_TEXTS = ["Позвонить клиенту", "Отправить договор", "Назначить пробный урок",
              "Проверить оплату", "Согласовать расписание", "Напомнить о занятии"]
TAG_WORDS = ["сайт", "звонок", "повторный", "VIP", "скидка", "рекомендация", "instagram",
             "вебинар", "ЕГЭ-2025", "летний лагерь", "корпоратив", "холодный", "горячий",
             "партнёр", "выставка", "telegram"]


def person(r):
    """(first_name, last_name, full name) for one drawn person."""
    if r.n(2):
        first, last = r.pick(FIRST_F), r.pick(LAST) + "а"
    else:
        first, last = r.pick(FIRST_M), r.pick(LAST)
    return first, last, first + " " + last


def company_name(r):
    return "%s «%s»" % (r.pick(COMPANY_KIND), r.pick(COMPANY_WORD))


def phone(r):
    return "+79%09d" % r.n(1000000000)


_LAT = {"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
        "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "c",
        "ч": "ch", "ш": "sh", "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
        "я": "ya"}


def translit(s):
    return "".join(_LAT.get(ch, ch) for ch in s.lower() if ch.isalnum())


def email(first, last, n):
    return "%s.%s%d@example.ru" % (translit(first), translit(last), n)
