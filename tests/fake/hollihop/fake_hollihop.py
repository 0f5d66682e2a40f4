#!/usr/bin/env python3
"""Fake Hollihop API V2 server (stdlib only) for crmsync tests, benchmarks and demos.

    python3 fake_hollihop.py --port 0 --authkey KEY --scale tiny --seed 1

The first stdout line is ``listening port=<N>``. Serves ``/Api/V2/<Method>`` (GET query or POST
form/JSON body, case-insensitive method and parameter names, like ASP.NET binding) and a
control API under ``/_fake/`` (see README.md). Data are generated deterministically from
``--seed``: row i of any entity is a pure function of (seed, i, scale), so nothing is
pre-generated; edits, deletions and additions are kept as overlays.

Shape table (UNSURE = chosen here, not confirmed by the API notes; ``--alt-shapes`` flips the
marked alternatives so parsers can be tested on both)::

  method                          root key                       key field(s)                    params / notes
  ------------------------------  -----------------------------  ------------------------------  ----------------------------------------
  GetLocations                    Locations                      Id                              dictionary (no paging)
  GetOffices                      Offices                        Id                              dictionary; Location = location Name
  GetStudyRequests                StudyRequests                  Id                              paged; Utm object, ExtraFields
  GetLeads                        Leads (+Now)                   Id                              paged; Agents, OfficesAndCompanies, Assignees
  GetLeadStatuses                 Statuses                       Id                              dictionary, UI order (not by Id)
  GetHistoryModifyLeadStatus      Actions                        (LeadId, DateTime, AfterId)     paged; leadId, dateTimeFrom
  GetStudents                     Students (+Now)                ClientId (Id is another number) paged; queryStudyRequests
  GetCompanies                    Companies                      Id  (UNSURE fields)             paged; Id 5001.., ClientId, Phones[]
  GetClientStatuses               Statuses (alt: ClientStatuses) Id  UNSURE                      dictionary
  GetClientFiles                  ClientFiles                    Id  UNSURE                      clientId REQUIRED
  GetStudentPersonalOfficeSettings StudentPersonalOfficeSettings ClientId UNSURE                 clientId REQUIRED; one-element array
  GetEmployees                    Employees                      Id (odd numbers)                paged; HTTP 500 unless queryPhoto=false
  GetTeachers                     Teachers                       Id (even numbers)               paged (take/skip optional)
  GetEmployeeStatuses             Statuses (alt: EmployeeStatuses) Id UNSURE                     dictionary
  GetEdUnits                      EdUnits (+Now)                 Id                              paged; statuses= (default: active); Days only with queryDays=true+dateFrom+dateTo
  GetEdUnitStudents               EdUnitStudents                 (EdUnitId, StudentClientId)     paged; Days as above, Payers with queryPayers=true
  GetEdUnitLeads                  EdUnitLeads                    (EdUnitId, LeadId)              paged
  GetLessonPlans                  LessonPlans                    Id  UNSURE fields               paged
  GetDisciplines                  Disciplines                    the string                      array of strings
  GetLevels                       Levels                         Name                            [{Name, Disciplines:[str]}]
  GetLearningTypes                LearningTypes                  the string (alt: Name)          array of strings (alt: [{Name}]) UNSURE
  GetPrices                       Prices                         Id                              dictionary; PriceValues, Offices
  GetDiscounts                    Discounts                      Id  UNSURE fields               dictionary
  GetSurcharges                   Surcharges                     Id  UNSURE fields               dictionary
  GetPayments                     Payments                       Id (sparse)                     paged; clientId, createdFrom
  GetBalances                     Balances                       ClientId                        balanceDate REQUIRED; paged
  GetIncomesAndOutgoes            {"Study":{"Items"},"OtherPayments":{"Items"}}  ClientId        clientId REQUIRED; one ledger per client
  GetSupplies                     Supplies                       Id  UNSURE (materials sold)     paged
  GetEdMaterials                  EdMaterials                    Id  UNSURE fields               paged
  GetAnnouncements                Announcements                  Id  UNSURE fields               targets REQUIRED (Students,Employees,Companies)

Other choices made where the notes are UNSURE: empty result lists are sent as ``[]``
(``--alt-shapes`` sends ``{}``); the date range on GetEdUnits/GetEdUnitStudents does not filter
rows, only Days; rate-limited requests do not occupy the sliding window; money strings use
U+00A0 between thousands and a plain space before the currency; param errors are
``{"Error":...}`` with ``--error-status`` (default 200); ``take`` defaults to ``--default-take``
(1000) and is clamped to ``--max-take`` (10000); Gender (students) true = male; a 429 is an
HTML page with Retry-After. Nothing here may serve a key real traffic does not support:
test_fake_shapes.py checks it (its FAKE_ASSUMPTIONS list is the fake's complete debt).
"""

import argparse
import bisect
import collections
import datetime
import heapq
import http.server
import itertools
import json
import math
import signal
import socket
import sys
import threading
import time
import urllib.parse
from array import array

# --------------------------------------------------------------------------------------------
# deterministic hashing

M64 = 0xFFFFFFFFFFFFFFFF
GOLD = 0x9E3779B97F4A7C15


def mix(x):
    """splitmix64 finaliser."""
    x = (x + GOLD) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


_LOW = 1 << 40


class R:
    """A cheap deterministic draw pool for one row: R(salt, i).n(k) in [0, k)."""
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
        q, v = divmod(p, k)
        self.p = q
        return v

    def pct(self, x):
        p = self.p
        if p < _LOW:
            self.s = s = mix(self.s)
            p = (p << 64) | s
        self.p = p // 100
        return p % 100 < x

    def pick(self, seq):
        p = self.p
        if p < _LOW:
            self.s = s = mix(self.s)
            p = (p << 64) | s
        k = len(seq)
        self.p = p // k
        return seq[p % k]


class Affine:
    """i -> (i*a + c) mod n, a bijection on Z_n, with a cheap inverse."""

    def __init__(self, salt, n):
        self.n = n = max(n, 1)
        if n == 1:
            self.a, self.c, self.ainv = 1, 0, 0
            return
        a = int(n * 0.6180339887) + salt % 97 + 1
        while math.gcd(a, n) != 1:
            a += 1
        self.a = a % n
        self.c = (salt >> 11) % n
        self.ainv = pow(self.a, -1, n)

    def f(self, i):
        return (i * self.a + self.c) % self.n

    def inv(self, t, n_src):
        """All i < n_src with f(i) == t (ascending)."""
        return range(((t - self.c) * self.ainv) % self.n, n_src, self.n)


# --------------------------------------------------------------------------------------------
# formatting

NBSP = "\u00a0"
_DS = {}


def ds(o):
    s = _DS.get(o)
    if s is None:
        s = _DS[o] = datetime.date.fromordinal(o).isoformat()
    return s


_HM = ["T%02d:%02d:" % (m // 60, m % 60) for m in range(1440)]
_SS = ["%02d" % x for x in range(60)]


def dts(o, sec):
    s = _DS.get(o)
    if s is None:
        s = ds(o)
    return s + _HM[sec // 60] + _SS[sec % 60]


def hm(minutes):
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_MONEY = {}


def money(q, cur="руб."):
    k = (q, cur)
    v = _MONEY.get(k)
    if v is None:
        v = _money(q, cur)
        if len(_MONEY) > 100000:
            _MONEY.clear()
        _MONEY[k] = v
    return v


def _money(q, cur):
    """33000 -> "33\u00a0000,00 руб." (NBSP thousands, comma decimals, negative for refunds)."""
    cents = round(abs(q) * 100)
    rub, kop = divmod(cents, 100)
    sign = "-" if q < 0 and cents else ""
    return f"{sign}{format(rub, ',').replace(',', NBSP)},{kop:02d} {cur}"


def units_str(minutes, unit=45, name="а.ч."):
    u = minutes / unit
    if u == int(u):
        return f"{int(u)} {name}"
    return f"{u:.2f}".rstrip("0").replace(".", ",") + f" {name}"


def now_str():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())


def parse_dt(s):
    """Accept YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.fff]][Z|±hh:mm] -> naive datetime."""
    s = s.strip().replace(" ", "T")
    if len(s) == 10:
        return datetime.datetime.strptime(s, "%Y-%m-%d")
    if s.endswith("Z"):
        s = s[:-1]
    if len(s) > 19 and s[19] in "+-":
        s = s[:19]
    if "." in s[16:]:
        s = s[:s.index(".", 16)]
    if len(s) == 16:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M")
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------------------------
# vocabulary

MALE_FIRST = ("Александр Алексей Андрей Артём Богдан Вадим Виктор Владимир Георгий Даниил Денис "
              "Дмитрий Евгений Егор Иван Игорь Илья Кирилл Константин Максим Матвей Михаил Никита "
              "Николай Олег Павел Роман Сергей Станислав Тимофей Фёдор Ярослав").split()
FEMALE_FIRST = ("Александра Алина Алиса Анастасия Анна Арина Валерия Вера Вероника Виктория Дарья "
                "Диана Екатерина Елена Елизавета Ирина Ксения Мария Марина Милана Наталья Ольга "
                "Полина Светлана Софья Татьяна Ульяна Юлия Яна").split()
LAST_M = ("Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
          "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев "
          "Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв "
          "Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков "
          "Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров "
          "Давыдов Беляев Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов "
          "Куликов Карпов Власов Мельников Денисов Гаврилов Тихонов Казаков Афанасьев Данилов "
          "Савельев Тимофеев Фомин Чернов Абрамов Мартынов Ефимов Федотов Щербаков Назаров Калинин "
          "Исаев Быков Маслов Родионов Коновалов Лазарев Воронин Климов Филатов Голубев Кудрявцев "
          "Прохоров Наумов Потапов Журавлёв Трофимов Леонов Соболев Ермаков Колесников Гончаров "
          "Никифоров Котов Гришин Архипов Громов Кириллов Малышев Панов Моисеев Румянцев Акимов "
          "Шевченко Ким Островский Полянский Каменский Цой Гребенюк").split()
MIDDLE_M = ("Александрович Алексеевич Андреевич Владимирович Дмитриевич Евгеньевич Игоревич Иванович "
            "Михайлович Николаевич Олегович Павлович Петрович Сергеевич Юрьевич Викторович").split()
TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o",
                     "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "sch", "", "y", "", "e",
                     "yu", "ya"]))
LAST_F = None   # filled below
MIDDLE_F = None
MAIL_DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "list.ru", "rambler.ru")

CITIES = (("Москва", "+03:00", "руб.", "Рубли"), ("Санкт-Петербург", "+03:00", "руб.", "Рубли"),
          ("Казань", "+03:00", "руб.", "Рубли"), ("Екатеринбург", "+05:00", "руб.", "Рубли"),
          ("Новосибирск", "+07:00", "руб.", "Рубли"), ("Алматы", "+05:00", "тг.", "Тенге"),
          ("Нижний Новгород", "+03:00", "руб.", "Рубли"), ("Самара", "+04:00", "руб.", "Рубли"),
          ("Краснодар", "+03:00", "руб.", "Рубли"), ("Владивосток", "+10:00", "руб.", "Рубли"))
STREETS = ("ул. Ленина", "Тверская ул.", "пр-т Мира", "ул. Пушкина", "Садовая ул.", "ул. Гагарина",
           "Невский пр-т", "ул. Советская", "Лесная ул.", "ул. Мичурина", "Цветной бульвар",
           "ул. Баумана", "Красный пр-т")
OFFICE_NAMES = ("Центральный", "На Тверской", "Северный", "Южный", "Западный", "Восточный",
                "У метро", "Парковый", "Речной", "Академический", "Солнечный", "Зелёный")

DISCIPLINES = ("Английский язык", "Немецкий язык", "Французский язык", "Китайский язык", "Гитара",
               "Фортепиано", "Вокал", "Математика", "Шахматы", "Программирование")
LANG_LEVELS = ("Beginner", "Elementary", "Pre-Intermediate", "Intermediate", "Upper-Intermediate",
               "Advanced")
GEN_LEVELS = ("Начальный", "Базовый", "Средний", "Продвинутый")
LEVELS = [(lv, DISCIPLINES[:4]) for lv in LANG_LEVELS] + [(lv, DISCIPLINES[4:]) for lv in GEN_LEVELS]
LEARNING_TYPES = ("Групповые занятия", "Индивидуальные занятия", "Мини-группа", "Онлайн-занятия",
                  "Корпоративное обучение")
MATURITIES = ("Дошкольники", "Дети", "Подростки", "Взрослые")
AD_SOURCES = ("Сайт", "Instagram", "ВКонтакте", "Рекомендация", "Яндекс.Директ", "2ГИС",
              "Наружная реклама", "Авито", "Telegram")
WHO_IS = ("Мама", "Папа", "Бабушка", "Дедушка", "Опекун", "Тётя")
EXTRA_FIELDS = (("Откуда узнали", ("Друзья", "Интернет", "Листовка", "Проходил мимо")),
                ("Школа", ("Школа № 57", "Гимназия № 1", "Лицей № 239", "Школа № 1535")),
                ("Класс", ("1", "3", "5", "7", "9", "11")),
                ("Комментарий менеджера", ("Перезвонить вечером", "VIP", "Скидка по акции",
                                           "Хочет в утреннюю группу")),
                ("Номер договора", None))
AMO_LINK_FIELD = "Ссылка на amoCRM"    # a real school's field for the amoCRM lead URL
LEAD_STATUSES = ((1, "Новый", "regular"), (2, "Первичный контакт", "regular"),
                 (5, "Думает", "pending"), (3, "Записан на пробное", "pending"),
                 (4, "Пробное проведено", "pending"), (8, "Недозвон", "regular"),
                 (6, "Стал клиентом", "successful"), (7, "Отказ", "unsuccessful"))
LEAD_STATUS_NAME = {i: n for i, n, _ in LEAD_STATUSES}
ED_UNIT_STATUSES = ("Reserve", "Forming", "Working", "Stopped", "Finished")
ED_UNIT_ACTIVE = ("Reserve", "Forming", "Working")
CLIENT_STATUSES = ((1, "Занимается"), (2, "Закончил обучение"), (3, "Саморегистрация"),
                   (4, "В резерве"), (5, "Приостановил обучение"))
EMPLOYEE_STATUSES = ((1, "Работает"), (2, "Уволен"), (3, "В отпуске"))
PAYMENT_METHODS = ((1, "Наличные"), (2, "Безналичные"), (3, "Банковская карта"), (4, "СБП"))
PAY_AMOUNTS = (1500, 2000, 2500, 3000, 3500, 4200, 5000, 6000, 7200, 8000, 9000, 12000, 15000,
               18000, 24000, 33000, 45000, 120000)
PAY_DESCR = ("Оплата за месяц", "Абонемент 8 занятий", "Оплата по счёту", "Предоплата",
             "Возврат за пропущенные занятия", "Оплата через сайт", "Оплата учебника")
POSITIONS = ("Администратор", "Менеджер по продажам", "Старший администратор", "Директор",
             "Бухгалтер", "Методист", "Руководитель филиала")
COMPANY_WORDS = ("Ромашка", "Вектор", "Альфа", "Технопром", "Гранит", "Меридиан", "Прогресс",
                 "Северный ветер", "Интеграл", "Сфера", "Горизонт", "Орион", "Стройинвест", "Лидер")
ANN_TITLES = ("Расписание на праздники", "Новый филиал", "Собрание родителей", "Летний интенсив",
              "Изменение цен", "Конкурс талантов", "Отчётный концерт", "Обновление системы")
TOPICS = ("Знакомство", "Present Simple", "Аккорды A, D, E", "Гаммы", "Дыхание", "Дроби",
          "Дебют", "Циклы", "Повторение", "Контрольная работа", "Past Simple", "Ритм")
DAY_NOTES = ("Перенос", "Замена преподавателя", "Праздник", "Открытый урок")
SDAY_NOTES = ("Болел", "Уважительная причина", "Опоздал", "Предупредил заранее")
SUPPLY_NAMES = ("Учебник Headway", "Рабочая тетрадь", "Медиатор", "Струны", "Нотная тетрадь",
                "Шахматная доска", "Flash-карты", "Учебник «Математика 5»")
MATERIAL_TYPES = ("Учебник", "Рабочая тетрадь", "Аудио", "Видео", "Презентация")
SR_STATUSES = ("Новая", "В работе", "Обработана")
SR_TYPES = ("Заявка с сайта", "Форма ВКонтакте", "Звонок", "Онлайн-чат", "Заявка из Instagram")
UTM_SOURCES = ("yandex", "google", "vk", "instagram", "telegram")
UTM_MEDIUMS = ("cpc", "social", "email", "banner")


def fem_last(last, male):
    if male:
        return last
    if last.endswith(("ов", "ев", "ёв", "ин")):
        return last + "а"
    if last.endswith("ский"):
        return last[:-2] + "ая"
    return last


def fem_middle(mid, male):
    if male:
        return mid
    return mid[:-2] + "на"


LAST_F = [fem_last(x, False) for x in LAST_M]
MIDDLE_F = [fem_middle(x, False) for x in MIDDLE_M]


def translit(s):
    return "".join(TRANSLIT.get(c, c) for c in s.lower())


def mobile(r):
    s = str(9000000000 + r.n(1000000000))
    f = r.n(10)
    if f < 4:
        return "8" + s
    if f < 6:
        return f"+7 {s[:3]} {s[3:6]}-{s[6:8]}-{s[8:]}"
    if f < 8:
        return f"+7 ({s[:3]}) {s[3:6]}-{s[6:8]}-{s[8:]}"
    if f < 9:
        return s
    return "+7" + s


def landline(r):
    s = str(4950000000 + r.n(10000000))
    return f"+7 ({s[:3]}) {s[3:6]}-{s[6:8]}-{s[8:]}"


def person(r, male=None):
    if male is None:
        male = r.n(100) < 45
    first = r.pick(MALE_FIRST if male else FEMALE_FIRST)
    last = fem_last(r.pick(LAST_M), male)
    return male, first, last


def full_name(last, first, middle=None):
    return f"{last} {first} {middle}" if middle else f"{last} {first}"


# --------------------------------------------------------------------------------------------
# scale

COUNT_FIELDS = ("locations", "offices", "companies", "students", "leads", "study_requests",
                "payments", "teachers", "employees", "ed_units", "members_per_unit",
                "leads_per_unit", "actions_per_lead", "files_per_client", "lesson_plans",
                "supplies", "ed_materials", "announcements", "prices", "discounts", "surcharges")
SCALES = {
    "tiny": dict(locations=3, offices=4, companies=5, students=20, leads=20, study_requests=20,
                 payments=20, teachers=10, employees=8, ed_units=20, members_per_unit=4,
                 leads_per_unit=2, actions_per_lead=3, files_per_client=2, lesson_plans=20,
                 supplies=12, ed_materials=10, announcements=12, prices=6, discounts=4,
                 surcharges=3),
    "demo": dict(locations=4, offices=8, companies=15, students=500, leads=700,
                 study_requests=300, payments=1500, teachers=20, employees=12, ed_units=80,
                 members_per_unit=10, leads_per_unit=2, actions_per_lead=3, files_per_client=2,
                 lesson_plans=300, supplies=150, ed_materials=40, announcements=25, prices=12,
                 discounts=6, surcharges=4),
    "bench": dict(locations=10, offices=40, companies=500, students=100000, leads=150000,
                  study_requests=60000, payments=500000, teachers=600, employees=300,
                  ed_units=20000, members_per_unit=12, leads_per_unit=3, actions_per_lead=4,
                  files_per_client=2, lesson_plans=100000, supplies=20000, ed_materials=500,
                  announcements=200, prices=40, discounts=10, surcharges=6),
}


class ApiError(Exception):
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.msg = msg
        self.status = status


class ControlError(Exception):
    pass


REMOVE = object()


# --------------------------------------------------------------------------------------------
# tables: key space + overlays

class State:
    """Copy-on-write overlay state of one table (readers grab table.st once per request)."""
    __slots__ = ("dsorted", "dset", "added", "akeys", "edits")

    def __init__(self, dsorted=None, dset=None, added=None, akeys=None, edits=None):
        self.dsorted = dsorted if dsorted is not None else []
        self.dset = dset if dset is not None else set()
        self.added = added if added is not None else []   # [(key, token)] in serving order
        self.akeys = akeys if akeys is not None else {}   # key -> token
        self.edits = edits if edits is not None else {}   # key -> {field: value|REMOVE}

    def copy(self):
        return State(list(self.dsorted), set(self.dset), list(self.added), dict(self.akeys),
                     dict(self.edits))


MATCH_LOCK = threading.Lock()
# Rendered rows kept (Table.row_text): bytes in use, and the bound (the server's memory).
ROW_CACHE = [0]
ROW_CACHE_BYTES = 768 << 20


class Table:
    paged = True
    strings = False            # rows are bare strings
    key_fields = ("Id",)
    key_types = (int,)
    stamps = ()                # fields set to "now" on add; "Updated" is bumped on edit
    now = False                # response carries "Now"
    required = ()              # (param, error message)
    gen_json = None            # optional fast path: (key, tok, ctx) -> JSON text of the row
    flat = False               # rows never carry nested collections (cheap /_fake/count)
    defaults = {}              # parameter -> value the server assumes when it is absent
    pure = False               # generated rows depend on (key, ctx) only: their text is kept
    pure_unless = ()           # ctx flags under which they read other tables' state

    def __init__(self, d, method, root, gen=None, filters=None, **kw):
        self.d = d
        self.method = method
        self.root = root
        self._gen = gen
        self.filters = filters or {}
        self.st = State()
        self.added_seq = 0
        for k, v in kw.items():
            setattr(self, k, v)

    # --- to implement: n, key_at(i), index_of(key), iter_from(pos, st), new_token(seq, spec)
    def gen(self, key, tok, ctx):
        return self._gen(key, tok, ctx)

    def find(self, key, st=None):
        st = st or self.st
        tok = st.akeys.get(key)
        if tok is not None:
            return tok
        i = self.index_of(key)
        if i is None or i in st.dset:
            return None
        return i

    def render(self, key, tok, ctx, st):
        row = self.gen(key, tok, ctx)
        ov = st.edits.get(key)
        if ov:
            row = dict(row)
            for k, v in ov.items():
                if k.startswith("_"):
                    continue    # a hidden attribute (e.g. _Status of ed units): never served
                if v is REMOVE:
                    row.pop(k, None)
                else:
                    row[k] = v
        return row

    def live_count(self, st):
        return self.n - len(st.dsorted) + len(st.added)

    def norm_key(self, raw):
        """raw: int / str / list from JSON or a query string -> internal key."""
        nf = len(self.key_fields)
        if nf == 1:
            if isinstance(raw, (list, tuple)):
                if len(raw) != 1:
                    raise ControlError("key must have 1 part")
                raw = raw[0]
            t = self.key_types[0]
            try:
                return t(raw) if not isinstance(raw, t) else raw
            except (TypeError, ValueError):
                raise ControlError(f"bad key {raw!r}")
        if isinstance(raw, str):
            s = raw.strip()
            if s.startswith("["):
                raw = json.loads(s)
            else:
                raw = [p for p in (s.split("|") if "|" in s else s.split(","))]
        if not isinstance(raw, (list, tuple)) or len(raw) != nf:
            raise ControlError(f"key must be a list of {nf}: {list(self.key_fields)}")
        try:
            return tuple(t(v) if not isinstance(v, t) else v for t, v in zip(self.key_types, raw))
        except (TypeError, ValueError):
            raise ControlError(f"bad key {raw!r}")

    @staticmethod
    def key_json(key):
        return list(key) if isinstance(key, tuple) else key

    # --- selection
    def parse_filters(self, params):
        preds, cands = [], None
        for pname, builder in self.filters.items():
            v = params.get(pname)
            if v is None or v == "":
                v = self.defaults.get(pname)
            if v is None or v == "":
                continue
            try:
                p, c = builder(v)
            except ApiError:
                raise
            except (TypeError, ValueError):
                raise ApiError(f"Некорректное значение параметра {pname}")
            if p is not None:
                preds.append(p)
            if c is not None and cands is None:
                cands = c
        return preds, cands

    def candidates_iter(self, cands, st):
        """cands: sorted base indices -> merged (key, tok) with all added rows."""
        dset = st.dset
        base = ((self.key_at(i), i) for i in cands if i not in dset)
        if not st.added:
            return base
        return heapq.merge(base, st.added, key=lambda e: e[0])

    def select(self, params, ctx, skip, take, st=None, text=False):
        """The page's rows (dicts), or with text=True their JSON texts (row_text)."""
        st = st or self.st
        preds, cands = self.parse_filters(params)
        out = []
        if take <= 0:
            return out
        if text:
            sig = tuple(sorted(ctx.items()))
            emit = lambda key, tok, row=None: self.row_text(key, tok, ctx, st, sig, row)
        else:
            emit = lambda key, tok, row=None: row if row is not None else self.render(key, tok, ctx, st)
        if not preds:
            for key, tok in itertools.islice(self.iter_from(skip, st), take):
                out.append(emit(key, tok))
            return out
        # The matches found so far for these parameters are kept until the data change (a
        # pass pages through them in order), so page n does not render and test the rows of
        # the n-1 pages before it again: what the server answers is the same. A filter that
        # needs only the key (on_key: ed units' hidden status) is tested without rendering.
        on_key = [getattr(p, "on_key", None) for p in preds]
        on_key = on_key if all(on_key) else None
        m = self.matches(params, st, cands)
        with m["lock"]:
            found = m["found"]
            for key, tok in found[skip:skip + take]:
                out.append(emit(key, tok))
            try:
                while len(found) < skip + take and m["seq"] is not None:
                    nxt = next(m["seq"], None)
                    if nxt is None:
                        m["seq"] = None
                        break
                    key, tok = nxt
                    if on_key is not None:
                        if not all(p(key) for p in on_key):
                            continue
                        row = None
                    else:
                        row = self.render(key, tok, ctx, st)
                        if not all(p(row) for p in preds):
                            continue
                    if len(found) >= skip:
                        out.append(emit(key, tok, row))
                    found.append((key, tok))
            except BaseException:
                self.forget_matches()   # the sequence is half-read: start again next time
                raise
        return out

    def row_text(self, key, tok, ctx, st, sig, row=None):
        """A row's JSON text. Generated rows of a table whose rows depend only on (key, ctx)
        (pure, and no ctx flag of pure_unless) are rendered once and kept, within
        ROW_CACHE_BYTES for the whole server; edited and added rows always go the dict way."""
        if key in st.edits or not isinstance(tok, int) or not self.pure or \
                any(ctx.get(f) for f in self.pure_unless):
            return json.dumps(row if row is not None else self.render(key, tok, ctx, st),
                              ensure_ascii=False, separators=(",", ":"))
        cache = self.__dict__.get("_texts")
        if cache is None:
            cache = self.__dict__.setdefault("_texts", {})
        t = cache.get((key, sig))
        if t is None:
            t = json.dumps(row if row is not None else self.gen(key, tok, ctx),
                           ensure_ascii=False, separators=(",", ":"))
            if ROW_CACHE[0] + len(t) <= ROW_CACHE_BYTES:
                ROW_CACHE[0] += len(t) + 100
                cache[(key, sig)] = t
        return t

    def matches(self, params, st, cands):
        """The cache entry of a filtered listing: its sequence and the matches found so far."""
        ck = (self.d.version, id(st), tuple(sorted((k, v) for k, v in params.items()
                                                   if k not in ("skip", "take", "authkey"))))
        with MATCH_LOCK:
            cache = self.__dict__.setdefault("_matches", collections.OrderedDict())
            m = cache.get(ck)
            if m is None:
                seq = self.candidates_iter(cands, st) if cands is not None else self.iter_from(0, st)
                m = cache[ck] = {"lock": threading.Lock(), "found": [], "seq": seq, "st": st}
                while len(cache) > 32:
                    cache.popitem(last=False)
            else:
                cache.move_to_end(ck)
            return m

    def forget_matches(self):
        with MATCH_LOCK:
            self.__dict__.pop("_matches", None)

    def select_frags(self, params, ctx, skip, take, st):
        """Unfiltered page as JSON texts via gen_json (rows with overlays go the dict way)."""
        out = []
        if take <= 0:
            return out
        edits = st.edits
        gj = self.gen_json
        for key, tok in itertools.islice(self.iter_from(skip, st), take):
            if key in edits or not isinstance(tok, int):
                out.append(json.dumps(self.render(key, tok, ctx, st), ensure_ascii=False,
                                      separators=(",", ":")))
            else:
                out.append(gj(key, tok, ctx))
        return out

    def keys(self, st=None):
        st = st or self.st
        return [k for k, _ in self.iter_from(0, st)]


class LargeTable(Table):
    """Base rows 0..n-1 with keys strictly increasing in i; added rows merged by key."""

    def base_live_lt(self, key, st):
        lo, hi = 0, self.n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key_at(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo - bisect.bisect_left(st.dsorted, lo)

    @staticmethod
    def rank_to_index(r, dsorted):
        idx = r
        while True:
            nidx = r + bisect.bisect_right(dsorted, idx)
            if nidx == idx:
                return idx
            idx = nidx

    def iter_from(self, pos, st):
        n = self.n
        added = st.added
        na = len(added)
        dsorted, dset = st.dsorted, st.dset
        live_base = n - len(dsorted)
        j = 0
        if na and pos > 0:
            lo, hi = 0, na
            while lo < hi:
                mid = (lo + hi) // 2
                if mid + self.base_live_lt(added[mid][0], st) < pos:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo
        r = pos - j
        i = n if r >= live_base else (self.rank_to_index(r, dsorted) if dsorted else r)
        key_at = self.key_at
        while True:
            while i < n and i in dset:
                i += 1
            if i < n:
                bk = key_at(i)
                if j < na and added[j][0] < bk:
                    yield added[j]
                    j += 1
                else:
                    yield bk, i
                    i += 1
            elif j < na:
                yield added[j]
                j += 1
            else:
                return

    def insert_added(self, st, key, tok):
        k = bisect.bisect_left(st.added, key, key=lambda e: e[0])
        st.added.insert(k, (key, tok))
        st.akeys[key] = tok


class IdTable(LargeTable):
    start, step, jitter = 1, 1, 1
    ksalt = 0
    key_fn = None
    index_fn = None

    def __init__(self, d, method, root, n, **kw):
        super().__init__(d, method, root, **kw)
        self.n = max(0, n)
        self.ksalt = mix(d.seed * 7919 + hash_name(method))

    def key_at(self, i):
        if self.key_fn is not None:
            return self.key_fn(i)
        k = self.start + i * self.step
        if self.jitter > 1:
            k += ((((i ^ self.ksalt) * GOLD) & M64) >> 40 & 0xFFFF) % self.jitter
        return k

    def index_of(self, key):
        if not isinstance(key, int):
            return None
        if self.index_fn is not None:
            return self.index_fn(key)
        i = (key - self.start) // self.step
        if 0 <= i < self.n and self.key_at(i) == key:
            return i
        return None

    def new_token(self, seq, spec):
        i = self.n + seq
        return self.key_at(i), i


class SmallTable(Table):
    """Dictionaries: materialised key list, served in base order then added in order."""
    paged = False

    def __init__(self, d, method, root, n, key_fn, **kw):
        super().__init__(d, method, root, **kw)
        self.n = n
        self.key_fn = key_fn
        self.base_keys = [key_fn(i) for i in range(n)]
        self.kidx = {k: i for i, k in enumerate(self.base_keys)}

    def key_at(self, i):
        return self.base_keys[i] if i < self.n else self.key_fn(i)

    def index_of(self, key):
        return self.kidx.get(key)

    def iter_from(self, pos, st):
        seq = [(k, i) for i, k in enumerate(self.base_keys) if i not in st.dset] + st.added
        return iter(seq[pos:])

    def candidates_iter(self, cands, st):
        return self.iter_from(0, st)

    def new_token(self, seq, spec):
        i = self.n + seq
        while self.key_fn(i) in self.kidx:
            i += 1000
        return self.key_fn(i), i

    def insert_added(self, st, key, tok):
        st.added.append((key, tok))
        st.akeys[key] = tok


class GroupedTable(LargeTable):
    """Children grouped under parents 0..P-1; base index = prefix[p] + j."""

    def __init__(self, d, method, root, nparents, **kw):
        super().__init__(d, method, root, **kw)
        self.nparents = nparents
        self._prefix = None
        self._lock = threading.Lock()

    @property
    def prefix(self):
        p = self._prefix
        if p is None:
            with self._lock:
                if self._prefix is None:
                    a = array("q", [0])
                    tot = 0
                    cc = self.child_count
                    for q in range(self.nparents):
                        tot += cc(q)
                        a.append(tot)
                    self._prefix = a
                p = self._prefix
        return p

    @property
    def n(self):
        return self.prefix[-1]

    _last = None

    def kids(self, p):
        """children_of(p), remembering the last parent (pages walk parents in order)."""
        c = self._last
        if c is not None and c[0] == p:
            return c[1]
        v = self.children_of(p)
        self._last = (p, v)
        return v

    def resolve(self, i):
        pre = self.prefix
        p = bisect.bisect_right(pre, i) - 1
        return p, self.kids(p)[i - pre[p]]

    def key_at(self, i):
        p, ch = self.resolve(i)
        return self.child_key(p, ch, i)

    def parent_range(self, p):
        pre = self.prefix
        return range(pre[p], pre[p + 1])

    def gen(self, key, tok, ctx):
        if isinstance(tok, int):
            p, ch = self.resolve(tok)
            return self.gen_child(key, p, ch, tok, ctx)
        return self.gen_added(key, tok, ctx)


def hash_name(s):
    h = 1469598103934665603
    for c in s.encode():
        h = ((h ^ c) * 1099511628211) & M64
    return h


# --------------------------------------------------------------------------------------------
# filter builders (param value string -> (row predicate, candidate base indices or None))

def f_eq(field, conv=int, cands=None):
    def b(v):
        x = conv(v)
        return (lambda row: row.get(field) == x), (cands(x) if cands else None)
    return b


def f_in(field):
    def b(v):
        xs = {s.strip().lower() for s in v.split(",") if s.strip()}
        return (lambda row: str(row.get(field, "")).lower() in xs), None
    return b


def f_bool(field):
    def b(v):
        x = parse_bool(v)
        if x is None:
            raise ValueError
        return (lambda row: bool(row.get(field)) == x), None
    return b


def f_present(field):
    def b(v):
        x = parse_bool(v)
        if x is None:
            raise ValueError
        return (lambda row: (field in row) == x), None
    return b


def f_ge(field):
    def b(v):
        x = parse_dt(v).strftime("%Y-%m-%dT%H:%M:%S")
        n = None
        return (lambda row: field in row and row[field] >= x[:len(row[field])]), n
    return b


def f_le(field, date_only=False):
    def b(v):
        dt = parse_dt(v)
        if len(v.strip()) == 10 and not date_only:
            dt = dt.replace(hour=23, minute=59, second=59)
        x = dt.strftime("%Y-%m-%dT%H:%M:%S")
        return (lambda row: field in row and row[field] <= x[:len(row[field])]), None
    return b


def f_office(field="OfficesAndCompanies"):
    def b(v):
        x = int(v)
        return (lambda row: any(o.get("Id") == x for o in row.get(field, ()))), None
    return b


def f_term(*fields):
    def b(v):
        x = v.strip().lower()
        return (lambda row: any(x in str(row.get(f, "")).lower() for f in fields)), None
    return b


def parse_bool(v):
    if v is None:
        return None
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    return None


# --------------------------------------------------------------------------------------------
# the data set

class Data:
    def __init__(self, seed, counts, anchor, alt_shapes=False):
        self.seed = seed
        self.c = c = dict(counts)
        for k in COUNT_FIELDS:
            c[k] = max(0, int(c.get(k, 0)))
        c["locations"] = max(1, c["locations"])
        c["offices"] = max(1, c["offices"])
        c["members_per_unit"] = max(1, c["members_per_unit"])
        self.alt = alt_shapes
        self.A = anchor.toordinal()          # "today" of the generated data
        self.S = self.A - 4 * 365            # data starts here
        self.SPAN = self.A - self.S - 1
        self.OPEN_END = self.A + 120         # open-ended schedules have lessons until here
        self.NS, self.NL, self.NU = c["students"], c["leads"], c["ed_units"]
        self.NT, self.NE, self.NO = c["teachers"], c["employees"], c["offices"]
        self.NC = c["companies"]
        sd = seed * 1000003
        self.salt = {}
        for name in ("stu", "stucore", "stuoff", "agents", "lead", "leadcore", "lattach", "chain",
                     "pay", "unit", "ukind", "day", "sday", "mem", "eul", "eulk", "teach", "emp",
                     "comp", "sr", "bal", "ledger", "files", "fcount", "pos", "lp", "sup", "mat",
                     "ann", "off", "price", "disc", "sur", "kstu", "kstu2", "kpay"):
            self.salt[name] = mix(sd ^ hash_name(name))
        s = self.salt
        self.aff_pay = Affine(s["pay"], self.NS)
        self.aff_lead = Affine(s["lattach"], self.NS)
        self.aff_sr = Affine(s["sr"], max(self.NL, 1))
        self.aff_mem = Affine(s["mem"], self.NS)
        self.mem_b = Affine(s["mem"] >> 7, self.NS).a
        self.aff_eul = Affine(s["eul"], max(self.NL, 1))
        self.eul_b = Affine(s["eul"] >> 7, max(self.NL, 1)).a
        self.aff_lp = Affine(s["lp"], max(self.NU, 1))
        self.aff_sup = Affine(s["sup"], self.NS)
        self._stu_core = {}
        self._pay_info = {}
        self._emp_ref = {}
        self._pay_pieces = {}
        self._off_ref = {}
        self._teacher = {}
        self._unit = {}
        self._stamp_lock = threading.Lock()
        self.version = 0
        self.office_names = [self.office_name(oi) for oi in range(self.NO)]
        self.office_names_json = [json.dumps(n, ensure_ascii=False) for n in self.office_names]
        self.tables = {}
        self._build_tables()

    # ----- small helpers
    def created(self, i, n, r):
        """(ordinal, seconds) growing with i; rows beyond n (added) sit at the anchor."""
        n = max(n, 1)
        o = self.S + (min(i, n - 1) * self.SPAN) // n + r.n(3)
        return min(o, self.A - 1), 9 * 3600 + r.n(12 * 3600)

    def later(self, o, sec, r, upto=None):
        upto = self.A - 1 if upto is None else upto
        du = r.n(max(1, upto - o + 1)) if r.pct(70) else 0
        if du == 0:
            return o, min(86399, sec + 60 + r.n(3600))
        return o + du, 9 * 3600 + r.n(12 * 3600)

    def bump(self, prev):
        """A new Updated stamp: now, but strictly after prev."""
        with self._stamp_lock:
            now = datetime.datetime.now().replace(microsecond=0)
            if prev:
                try:
                    p = parse_dt(prev)
                    if now <= p:
                        now = p + datetime.timedelta(seconds=1)
                except ValueError:
                    pass
            return now.strftime("%Y-%m-%dT%H:%M:%S")

    # ----- offices / locations
    def location(self, li):
        base = CITIES[li % len(CITIES)]
        if li >= len(CITIES):
            return (f"{base[0]}-{li // len(CITIES) + 1}",) + base[1:]
        return base

    def office_loc(self, oi):
        return oi % self.c["locations"]

    def office_name(self, oi):
        nm = OFFICE_NAMES[oi % len(OFFICE_NAMES)]
        if oi >= len(OFFICE_NAMES):
            nm += f" {oi // len(OFFICE_NAMES) + 1}"
        return f"{self.location(self.office_loc(oi))[0]}, {nm}"

    def office_address(self, oi):
        r = R(self.salt["off"] ^ 1, oi)
        return f"г. {self.location(self.office_loc(oi))[0]}, {r.pick(STREETS)}, д. {1 + r.n(120)}"

    def office_cur(self, oi):
        loc = CITIES[self.office_loc(oi) % len(CITIES)]
        return loc[2], loc[3]

    def gen_location(self, key, i, ctx):
        return {"Id": key, "Name": self.location(i)[0]}

    def gen_office(self, key, i, ctx):
        r = R(self.salt["off"], i)
        loc = self.location(self.office_loc(i))
        row = {"Id": key, "Name": self.office_name(i), "Location": loc[0],
               "Address": self.office_address(i)}
        if r.pct(40):
            row["Address"] += f", подъезд {1 + r.n(4)}, код домофона {r.n(900) + 100}#"
        row["Phone"] = landline(r)
        if r.pct(70):
            row["EMail"] = f"office{key}@school.example.ru"
        row["TimeZone"] = loc[1]
        row["NoClassrooms"] = r.pct(15)
        if r.pct(40):
            row["License"] = f"Лицензия № {r.n(90000) + 10000} от {ds(self.S - r.n(2000))}"
        return row

    # ----- students
    def s_cid(self, i):
        return 100 + 3 * i + (((((i ^ self.salt["kstu"]) & M64) * GOLD) & M64) >> 47 & 1)

    def s_index(self, cid):
        if not isinstance(cid, int) or cid < 100 or (cid - 100) % 3 == 2:
            return None
        i = (cid - 100) // 3
        if i < 0 or self.s_cid(i) != cid:
            return None
        return i

    def s_id(self, i):
        return 1 + 2 * i + (((((i ^ self.salt["kstu2"]) & M64) * GOLD) & M64) >> 47 & 1)

    def s_index_by_id(self, sid):
        i = (sid - 1) // 2
        return i if 0 <= i and self.s_id(i) == sid else None

    def stu_name_parts(self, i):
        """(male, first, last, middle|None, offices) from one hash."""
        h = mix(self.salt["stucore"] ^ ((i * GOLD) & M64))
        h, g = divmod(h, 100)
        male = g < 45
        if male:
            h, f = divmod(h, len(MALE_FIRST))
            first = MALE_FIRST[f]
            h, f = divmod(h, len(LAST_M))
            last = LAST_M[f]
            h, f = divmod(h, 100 * len(MIDDLE_M))
            mid = MIDDLE_M[f // 100] if f % 100 < 32 else None
        else:
            h, f = divmod(h, len(FEMALE_FIRST))
            first = FEMALE_FIRST[f]
            h, f = divmod(h, len(LAST_F))
            last = LAST_F[f]
            h, f = divmod(h, 100 * len(MIDDLE_F))
            mid = MIDDLE_F[f // 100] if f % 100 < 32 else None
        no = self.NO
        h, o1 = divmod(h, no)
        offs = (o1,)
        if no > 1:
            h, f = divmod(h, 100)
            if f < 12:
                o2 = (o1 + 1 + h % (no - 1)) % no
                offs = (o1, o2) if o1 < o2 else (o2, o1)
        return male, first, last, mid, offs

    def stu_core(self, i):
        c = self._stu_core.get(i)
        if c is None:
            r = R(self.salt["stucore"] ^ 1, i)
            male, first, last, mid, _ = self.stu_name_parts(i)
            mob = (mobile(r) if r.n(200) else "-") if r.pct(98) else None
            ph = landline(r) if r.pct(5) else None
            em = f"{translit(last)}{r.n(1000)}@{r.pick(MAIL_DOMAINS)}" if r.pct(10) else None
            c = (male, first, last, mid, mob, ph, em)
            if len(self._stu_core) > 300000:
                self._stu_core.clear()
            self._stu_core[i] = c
        return c

    def stu_view(self, i):
        """Core student fields as currently served (edits applied)."""
        male, first, last, mid, mob, ph, em = self.stu_core(i)
        v = {"Gender": male, "FirstName": first, "LastName": last, "MiddleName": mid,
             "Mobile": mob, "Phone": ph, "EMail": em}
        ov = self.tables["getstudents"].st.edits.get(self.s_cid(i)) if self.tables else None
        if ov:
            for k in v:
                if k in ov:
                    v[k] = None if ov[k] is REMOVE else ov[k]
        return v

    def stu_name(self, i):
        v = self.stu_view(i)
        return full_name(v["LastName"], v["FirstName"], v["MiddleName"])

    def stu_offices(self, i):
        return self.stu_name_parts(i)[4]

    def agents(self, salt, i, pct, last):
        r = R(salt, i)
        if not r.pct(pct):
            return None
        out = []
        for k in range(1 + (r.n(100) < 25)):
            male = r.pct(35)
            a = {"FirstName": r.pick(MALE_FIRST if male else FEMALE_FIRST),
                 "LastName": fem_last(last, male) if r.pct(85) else fem_last(r.pick(LAST_M), male)}
            if r.pct(40):
                a["MiddleName"] = fem_middle(r.pick(MIDDLE_M), male)
            who = ("Папа" if male else "Мама") if r.pct(80) else r.pick(WHO_IS)
            a["WhoIs"] = who
            if r.pct(95):
                a["Mobile"] = mobile(r)
            if r.pct(4):
                a["Phone"] = landline(r)
            if r.pct(20):
                a["EMail"] = f"{translit(a['LastName'])}.{r.n(100)}@{r.pick(MAIL_DOMAINS)}"
            if r.pct(3):
                a["Skype"] = f"{translit(a['FirstName'])}{r.n(1000)}"
            if r.pct(10):
                a["JobOrStudyPlace"] = f"ООО «{r.pick(COMPANY_WORDS)}»"
                if r.pct(60):
                    a["Position"] = r.pick(("Инженер", "Бухгалтер", "Врач", "Учитель", "Менеджер"))
            if r.pct(5):
                a["Birthday"] = ds(self.S - 8000 - r.n(8000))
            a["IsCustomer"] = k == 0
            a["UseMobileBySystem"] = r.pct(80)
            a["UseEMailBySystem"] = r.pct(30)
            out.append(a)
        return out

    def extra_fields(self, r, pct, cid=None):
        if not r.pct(pct):
            return None
        out = []
        for k in range(1 + r.n(2)):
            name, vals = EXTRA_FIELDS[(r.n(len(EXTRA_FIELDS)) + k) % len(EXTRA_FIELDS)]
            if any(e["Name"] == name for e in out):
                continue
            val = r.pick(vals) if vals else f"{cid or r.n(9999)}/{2020 + r.n(6)}"
            out.append({"Name": name, "Value": val})
        return out

    def emp_ref(self, ei):
        v = self._emp_ref.get(ei)
        if v is None:
            r = R(self.salt["emp"] ^ 5, ei)
            male, first, last = person(r)
            v = self._emp_ref[ei] = {"Id": 2 * ei + 1, "FullName": full_name(last, first)}
        return v

    def assignees(self, r, pct):
        if self.NE == 0 or not r.pct(pct):
            return None
        e1 = r.n(self.NE)
        out = [self.emp_ref(e1)]
        if self.NE > 1 and r.pct(10):
            out.append(self.emp_ref((e1 + 1 + r.n(self.NE - 1)) % self.NE))
        return out

    def offices_ref(self, ois):
        v = self._off_ref.get(ois)
        if v is None:
            v = [{"Id": oi + 1, "Name": self.office_names[oi]} for oi in ois]
            if len(self._off_ref) < 100000:
                self._off_ref[tuple(ois)] = v
        return v

    def gen_student(self, cid, i, ctx):
        male, first, last, mid, mob, ph, em = self.stu_core(i)
        r = R(self.salt["stu"], i)
        co, cs = self.created(i, self.NS, r)
        uo, us = self.later(co, cs, r)
        row = {"ClientId": cid, "Id": self.s_id(i), "Created": dts(co, cs),
               "Updated": dts(uo, us), "FirstName": first, "LastName": last}
        if mid:
            row["MiddleName"] = mid
        row["Gender"] = male
        if r.pct(15):
            row["Birthday"] = ds(self.S - 1500 - r.n(15000))
        row["AddressDate"] = ds(co - r.n(40))
        if r.pct(10):
            row["VisitDateTime"] = ds(co + r.n(30))
        if r.pct(96):
            st = CLIENT_STATUSES[(0, 0, 0, 1, 1, 2, 3, 4, 0, 1)[r.n(10)]]
            row["StatusId"], row["Status"] = st
        if mob:
            row["Mobile"] = mob
        if ph:
            row["Phone"] = ph
        if em:
            row["EMail"] = em
        row["UseMobileBySystem"] = r.pct(85)
        row["UseEMailBySystem"] = em is not None and r.pct(60)
        if r.pct(2):
            row["Skype"] = f"{translit(first)}.{translit(last)}"
        if r.pct(10):
            row["Address"] = f"{r.pick(STREETS)}, д. {1 + r.n(150)}, кв. {1 + r.n(300)}"
        if r.pct(3):
            row["SocialNetworkPage"] = f"https://vk.com/id{r.n(900000000) + 10000}"
        if r.pct(8):
            row["JobOrStudyPlace"] = r.pick(("Школа № 57", "МГУ", "Гимназия № 1", "ООО «Вектор»"))
        if r.pct(80):
            row["Maturity"] = r.pick(MATURITIES)
        if r.pct(50):
            row["LearningTypes"] = [r.pick(LEARNING_TYPES[:4])]
        if r.pct(70):
            ds_ = []
            for k in range(1 + r.pct(20)):
                di = (r.n(len(DISCIPLINES)) + k) % len(DISCIPLINES)
                e = {"Discipline": DISCIPLINES[di]}
                if r.pct(60):
                    e["Level"] = r.pick(LANG_LEVELS if di < 4 else GEN_LEVELS)
                ds_.append(e)
            row["Disciplines"] = ds_
        row["OfficesAndCompanies"] = self.offices_ref(self.stu_offices(i))
        a = self.assignees(r, 40)
        if a:
            row["Assignees"] = a
        ag = self.agents(self.salt["agents"], i, 25, last)
        if ag:
            row["Agents"] = ag
        if r.pct(55):
            row["AdSource"] = r.pick(AD_SOURCES)
        ef = self.extra_fields(r, 30, cid) or []
        amo = self.amo_link(i)
        if amo is not None:
            ef = ef + [{"Name": AMO_LINK_FIELD, "Value": amo}]
        if ef:
            row["ExtraFields"] = ef
        if r.pct(3):
            row["PhotoUrls"] = [f"/Files/fake.t8s.ru/Photos/Clients/{cid}_{r.n(100000)}.jpg"]
        if ctx.get("study_requests"):
            srs = self.student_study_requests(i)
            if srs:
                row["StudyRequests"] = srs
        return row

    def amo_lead_of(self, i):
        """The amoCRM lead id a student's link points to (None: no link, "" placeholder)."""
        k = i % 7                   # 3 in 7 with a link, 1 in 7 with only the placeholder
        if k not in (0, 2, 3, 5):
            return None
        if k == 3:
            return ""               # the field exists but holds only "https://"
        return 20000000 + mix(self.salt["stu"] ^ 0xA30 ^ i) % 9000000

    def amo_link(self, i):
        lid = self.amo_lead_of(i)
        if lid is None:
            return None
        return "https://" if lid == "" else f"https://fakeschool.amocrm.ru/leads/detail/{lid}"

    def student_study_requests(self, si):
        out = []
        srt = self.tables["getstudyrequests"]
        st = srt.st
        for li in self.aff_lead.inv(si, self.NL):
            if self.lead_attach(li) != si:
                continue
            for q in self.aff_sr.inv(li, srt.n):
                if q in st.dset or not self.sr_has_lead(q):
                    continue
                key = srt.key_at(q)
                full = srt.render(key, q, {}, st)
                e = {k: full[k] for k in ("Id", "Created", "LeadId", "Reffer", "Utm") if k in full}
                out.append(e)
        out.sort(key=lambda e: e["Id"])
        return out

    # ----- leads
    def lead_attach(self, li):
        if self.NS == 0 or li >= self.NL:
            return None
        h = mix(self.salt["lattach"] ^ li)
        return self.aff_lead.f(li) if h % 100 < 52 else None

    def lead_core(self, li):
        r = R(self.salt["leadcore"], li)
        male, first, last = person(r)
        if r.pct(3):
            last = "Пробный"
        mid = fem_middle(r.pick(MIDDLE_M), male) if r.pct(22) else None
        return male, first, last, mid, r

    def lead_id(self, li):
        return self.tables["getleads"].key_at(li)

    def chain_len(self, li):
        h = mix(self.salt["chain"] ^ li)
        if h % 100 < 22:
            return 0
        return 1 + (h >> 8) % self.c["actions_per_lead"] if self.c["actions_per_lead"] else 0

    def lead_chain(self, li):
        """[(ordinal, seconds, status_id)] of the lead's status changes, oldest first."""
        n = self.chain_len(li)
        if not n:
            return []
        r = R(self.salt["chain"] ^ 3, li)
        co, cs = self.created(li, self.NL, R(self.salt["lead"], li))
        t = co * 86400 + cs
        out = []
        prev = None
        attached = self.lead_attach(li) is not None
        for k in range(n):
            t += 600 + r.n(4 * 86400)
            if k == n - 1 and attached:
                sid = 6
            elif k == 0:
                sid = 1 if r.pct(70) else 2
            else:
                sid = r.pick((2, 3, 4, 5, 8, 7, 5, 3))
                if sid == prev:
                    sid = 4 if sid != 4 else 5
            prev = sid
            out.append((t // 86400, t % 86400, sid))
        return out

    def gen_lead(self, key, i, ctx):
        male, first, last, mid, r = self.lead_core(i)
        r2 = R(self.salt["lead"], i)
        co, cs = self.created(i, self.NL, r2)
        chain = self.lead_chain(i) if i < self.NL else []
        uo, us = self.later(co, cs, r2)
        if chain and (chain[-1][0], chain[-1][1]) > (uo, us):
            uo, us = chain[-1][0], chain[-1][1]
        row = {"Id": key, "Created": dts(co, cs), "Updated": dts(uo, us),
               "FirstName": first, "LastName": last}
        if mid:
            row["MiddleName"] = mid
        r.pct(80)    # (was Gender: 1,736 real leads have none; the draw keeps the data)
        if r.pct(3):
            row["Birthday"] = ds(self.S - 1500 - r.n(15000))
        row["AddressDate"] = ds(co)
        if chain:
            row["StatusId"] = chain[-1][2]
            row["Status"] = LEAD_STATUS_NAME[chain[-1][2]]
        if r.pct(99):
            row["Mobile"] = mobile(r)
        if r.pct(1):
            row["Phone"] = landline(r)
        if r.pct(7):
            row["EMail"] = f"{translit(last)}{r.n(1000)}@{r.pick(MAIL_DOMAINS)}"
        row["UseMobileBySystem"] = r.pct(85)
        row["UseEMailBySystem"] = "EMail" in row and r.pct(50)
        if r.pct(70):
            di = r.n(len(DISCIPLINES))
            row["Discipline"] = DISCIPLINES[di]
            if r.pct(40):
                row["Level"] = r.pick(LANG_LEVELS if di < 4 else GEN_LEVELS)
        if r.pct(40):
            row["LearningType"] = r.pick(LEARNING_TYPES[:4])
        if r.pct(60):
            row["Maturity"] = r.pick(MATURITIES)
        if r.pct(60):
            row["AdSource"] = r.pick(AD_SOURCES)
        si = self.lead_attach(i)
        if si is not None:
            row["StudentClientId"] = self.s_cid(si)
            offs = self.stu_offices(si)
        else:
            o1 = r.n(self.NO)
            offs = (o1,) if self.NO == 1 or not r.pct(8) else tuple(sorted({o1, (o1 + 1) % self.NO}))
        row["OfficesAndCompanies"] = self.offices_ref(offs)
        a = self.assignees(r, 55)
        if a:
            row["Assignees"] = a
        ag = self.agents(self.salt["agents"] ^ 77, i, 20, last)
        if ag:
            row["Agents"] = ag
        ef = self.extra_fields(r, 15)
        if ef:
            row["ExtraFields"] = ef
        return row

    # ----- study requests
    def sr_has_lead(self, q):
        return self.NL > 0 and mix(self.salt["sr"] ^ q) % 100 < 70

    def gen_study_request(self, key, i, ctx):
        r = R(self.salt["sr"] ^ 9, i)
        co, cs = self.created(i, self.tables["getstudyrequests"].n, r)
        row = {"Id": key, "Created": dts(co, cs)}
        if r.pct(90):
            row["Status"] = r.pick(SR_STATUSES)
        row["Type"] = r.pick(SR_TYPES)
        oi = r.n(self.NO)
        row["Location"] = self.location(self.office_loc(oi))[0]
        if r.pct(85):
            row["Office"] = self.office_names[oi]
        li = self.aff_sr.f(i) if self.sr_has_lead(i) and i < self.tables["getstudyrequests"].n else None
        if li is not None:
            male, first, last, mid, _ = self.lead_core(li)
        else:
            male, first, last = person(r)
        row["Name"] = f"{first} {last}" if r.pct(60) else first
        row["Phone"] = mobile(r)
        if r.pct(25):
            row["EMail"] = f"{translit(first)}{r.n(1000)}@{r.pick(MAIL_DOMAINS)}"
        if r.pct(60):
            di = r.n(len(DISCIPLINES))
            row["Discipline"] = DISCIPLINES[di]
            if r.pct(30):
                row["Level"] = r.pick(LANG_LEVELS if di < 4 else GEN_LEVELS)
        if self.NT and r.pct(10):
            row["Teacher"] = self.teacher_name(r.n(self.NT))
        if r.pct(15):
            row["BeginDate"] = ds(co + 3 + r.n(20))
            if r.pct(50):
                row["EndDate"] = ds(co + 60 + r.n(200))
        if r.pct(50):
            row["Reffer"] = r.pick(("https://school.example.ru/", "https://school.example.ru/kids",
                                      "https://yandex.ru/", "https://vk.com/school"))
        if r.pct(40):
            u = {"Source": r.pick(UTM_SOURCES), "Medium": r.pick(UTM_MEDIUMS),
                 "Campaign": f"spring_{2021 + r.n(5)}"}
            if r.pct(40):
                u["Term"] = r.pick(("курсы английского", "гитара для детей", "шахматы"))
            if r.pct(20):
                u["Content"] = f"ad{r.n(50)}"
            row["Utm"] = u
        if li is not None:
            row["LeadId"] = self.lead_id(li)
            si = self.lead_attach(li)
            if si is not None:
                row["StudentClientId"] = self.s_cid(si)
        ef = self.extra_fields(r, 10)
        if ef:
            row["ExtraFields"] = ef
        return row

    # ----- teachers / employees
    def teacher_core(self, ti):
        v = self._teacher.get(ti)
        if v is not None:
            return v[:5] + (R(self.salt["teach"] ^ 17, ti),)
        r = R(self.salt["teach"], ti)
        male, first, last = person(r, r.pct(40))
        mid = fem_middle(r.pick(MIDDLE_M), male) if r.pct(45) else None
        photo = f"/Files/fake.t8s.ru/Photos/Teachers/{2 * ti + 2}.jpg" if r.pct(30) else None
        self._teacher[ti] = (male, first, last, mid, photo)
        return male, first, last, mid, photo, R(self.salt["teach"] ^ 17, ti)

    def teacher_name(self, ti):
        male, first, last, mid, photo, _ = self.teacher_core(ti)
        return full_name(last, first, mid)

    def gen_teacher(self, key, i, ctx):
        male, first, last, mid, photo, r = self.teacher_core(i)
        co, cs = self.created(i, self.NT, r)
        row = {"Id": key, "Created": dts(co, cs), "FirstName": first, "LastName": last}
        if mid:
            row["MiddleName"] = mid
        if r.pct(55):
            row["Birthday"] = ds(self.S - 7000 - r.n(12000))
        if r.pct(95):
            row["Mobile"] = mobile(r)
        if r.pct(10):
            row["Phone"] = landline(r)
        if r.pct(70):
            row["EMail"] = f"{translit(first)}.{translit(last)}@school.example.ru"
        row["UseMobileBySystem"] = r.pct(80)
        row["UseEMailBySystem"] = "EMail" in row and r.pct(70)
        fired = r.pct(12)
        row["Fired"] = fired
        if r.pct(35):
            row["StatusId"], row["Status"] = EMPLOYEE_STATUSES[1 if fired else 0]
        di = r.n(len(DISCIPLINES))
        row["Disciplines"] = [DISCIPLINES[di]] + ([DISCIPLINES[(di + 1) % len(DISCIPLINES)]]
                                                  if r.pct(25) else [])
        if r.pct(60):
            lv = LANG_LEVELS if di < 4 else GEN_LEVELS
            k = r.n(len(lv))
            row["Levels"] = list(lv[k:k + 1 + r.n(3)])
        if r.pct(60):
            row["Maturities"] = list(MATURITIES[r.n(2):2 + r.n(3)])
        o1 = r.n(self.NO)
        offs = [o1] + ([(o1 + 1) % self.NO] if self.NO > 1 and r.pct(20) else [])
        row["Offices"] = self.offices_ref(tuple(sorted(offs)))
        row["Corporative"] = r.pct(5)
        if photo and ctx.get("photo", True):
            row["PhotoUrls"] = [photo]
        return row

    def gen_employee(self, key, i, ctx):
        r = R(self.salt["emp"] ^ 5, i)
        male, first, last = person(r)
        r2 = R(self.salt["emp"], i)
        row = {"Id": key, "FirstName": first, "LastName": last}
        if r2.pct(50):
            row["MiddleName"] = fem_middle(r2.pick(MIDDLE_M), male)
        if r2.pct(40):
            row["Birthday"] = ds(self.S - 7000 - r2.n(12000))
        if r2.pct(90):
            row["Mobile"] = mobile(r2)
        if r2.pct(20):
            row["Phone"] = landline(r2)
        if r2.pct(80):
            row["EMail"] = f"{translit(first)[0]}.{translit(last)}@school.example.ru"
        row["Position"] = r2.pick(POSITIONS)
        o1 = r2.n(self.NO)
        offs = [o1] + ([(o1 + 1) % self.NO] if self.NO > 1 and r2.pct(25) else [])
        row["Offices"] = self.offices_ref(tuple(sorted(offs)))
        fired = r2.pct(10)
        row["Fired"] = fired
        row["Corporative"] = r2.pct(3)
        if r2.pct(50):
            row["StatusId"], row["Status"] = EMPLOYEE_STATUSES[1 if fired else (2 if r2.pct(5) else 0)]
        if ctx.get("photo", True) and r2.pct(30):
            row["PhotoUrls"] = [f"/Files/fake.t8s.ru/Photos/Employees/{key}.jpg"]
        return row

    # ----- companies
    def comp_name(self, j):
        w = COMPANY_WORDS[j % len(COMPANY_WORDS)]
        if j >= len(COMPANY_WORDS):
            w += f"-{j // len(COMPANY_WORDS) + 1}"
        return f"ООО «{w}»"

    def comp_cid(self, j):
        return 102 + 3 * j

    def gen_company(self, key, i, ctx):
        r = R(self.salt["comp"], i)
        co, cs = self.created(i, self.NC, r)
        uo, us = self.later(co, cs, r)
        name = self.comp_name(i)
        row = {"Id": key, "ClientId": self.comp_cid(i), "Created": dts(co, cs),
               "Updated": dts(uo, us), "Name": name,
               "FullName": "Общество с ограниченной ответственностью " + name[4:],
               "Inn": str(7700000000 + r.n(99999999))}
        if r.pct(70):
            row["Kpp"] = str(770100000 + r.n(99999))
        if r.pct(80):
            row["Address"] = f"г. {self.location(r.n(self.c['locations']))[0]}, {r.pick(STREETS)}, д. {1 + r.n(99)}"
        if r.pct(85):
            row["Phones"] = [{"Number": landline(r), "Description": "Приёмная"}]
            if r.pct(40):
                row["Phones"].append({"Number": mobile(r), "Description": "Бухгалтерия"})
        if r.pct(60):
            row["EMail"] = f"info@{translit(COMPANY_WORDS[i % len(COMPANY_WORDS)]).replace(' ', '')}.example.ru"
        if r.pct(60):
            male, first, last = person(r)
            row["ContactPerson"] = full_name(last, first)
        row["OfficesAndCompanies"] = self.offices_ref((r.n(self.NO),))
        a = self.assignees(r, 50)
        if a:
            row["Assignees"] = a
        return row

    # ----- ed units
    def unit_id(self, u):
        return self.tables["getedunits"].key_at(u)

    def unit_kind(self, u):
        h = mix(self.salt["ukind"] ^ u)
        t = h % 100
        mx = self.c["members_per_unit"]
        if t < 60:
            typ, m = "Group", 1 + (h >> 8) % mx
        elif t < 80:
            typ, m = "MiniGroup", 1 + (h >> 8) % min(3, mx)
        else:
            typ, m = "Individual", 1
        return typ, min(m, self.NS)

    def unit(self, u):
        c = self._unit.get(u)
        if c is not None:
            return c
        typ, m = self.unit_kind(u)
        r = R(self.salt["unit"], u)
        uid = self.unit_id(u)
        corp = self.NC > 0 and typ != "Individual" and r.pct(8)
        oi = r.n(self.NO)
        di = r.n(len(DISCIPLINES))
        if r.pct(10):
            level = "[All]"
        else:
            level = r.pick(LANG_LEVELS if di < 4 else GEN_LEVELS)
        online = r.pct(15)
        if corp:
            lt = LEARNING_TYPES[4]
        elif online:
            lt = LEARNING_TYPES[3]
        else:
            lt = {"Group": LEARNING_TYPES[0], "MiniGroup": LEARNING_TYPES[2],
                  "Individual": LEARNING_TYPES[1]}[typ]
        nu = max(self.NU, 1)
        begin = self.S + (min(u, nu - 1) * (self.SPAN - 30)) // nu + r.n(30)
        end = begin + 90 + r.n(240) if r.pct(55) else None
        if end is not None and end >= self.A and r.pct(50):
            end = None
        if end is not None and end < self.A:
            status = "Finished" if r.pct(85) else "Stopped"
        elif begin > self.A - 14:
            status = "Forming"
        else:
            status = "Reserve" if r.pct(3) else "Working"
        disc = DISCIPLINES[di]
        if typ == "Individual":
            si = self.aff_mem.f(u) if self.NS else 0
            sc = self.stu_core(si) if self.NS else (True, "Иван", "Иванов")
            name = f"{disc}, инд. {sc[2]} {sc[1][0]}."
        else:
            name = f"{disc} {level if level != '[All]' else ''} гр. {uid}".replace("  ", " ")
        items = []
        nitems = 1 if r.pct(70) else 2
        wd1 = r.n(6) if r.pct(90) else 6
        tch = r.n(self.NT) if self.NT else None
        for k in range(nitems):
            wd = wd1 if k == 0 else (wd1 + 2 + r.n(3)) % 7
            start = 9 * 60 + r.n(24) * 30
            length = r.pick((45, 60, 60, 90, 90, 120)) if typ != "Individual" else r.pick((45, 60))
            t = tch if (k == 0 or r.pct(70)) else (r.n(self.NT) if self.NT else None)
            it = {"id": (u + 1) * 4 + k, "wd": wd, "begin": begin, "end": end, "start": start,
                  "len": length, "teacher": t}
            if online:
                it["link"] = f"https://meet.example.ru/room-{uid}"
            elif r.pct(85):
                it["room"] = (oi + 1) * 100 + 1 + r.n(6)
            items.append(it)
        cap = {"Group": 8 + r.n(5), "MiniGroup": 4, "Individual": 1}[typ]
        co = begin - 1 - r.n(30)
        cs = 9 * 3600 + r.n(12 * 3600)
        uo, us = self.later(co, cs, r, upto=self.A - 1)
        c = {"typ": typ, "m": m, "corp": corp, "oi": oi, "comp": r.n(self.NC) if corp else None,
             "disc": disc, "level": level, "mat": r.pick(MATURITIES), "lt": lt, "name": name,
             "begin": begin, "end": end, "status": status, "items": items, "cap": cap,
             "desc": r.pick(("Группа выходного дня", "Подготовка к экзамену", "Интенсив",
                             "Летняя программа")) if r.pct(20) else None,
             "assignee": r.n(self.NE) if self.NE and r.pct(60) else None,
             "ef": self.extra_fields(r, 15), "created": (co, cs), "updated": (uo, us),
             "price": r.n(self.c["prices"]) if self.c["prices"] else None, "id": uid}
        if len(self._unit) > 100000:
            self._unit.clear()
        self._unit[u] = c
        return c

    def unit_status(self, key):
        """A unit's status: a hidden attribute (control API: edit/add with set._Status)."""
        t = self.tables["getedunits"]
        st = t.st
        ov = st.edits.get(key)
        if ov and "_Status" in ov and ov["_Status"] is not REMOVE:
            return ov["_Status"]
        tok = t.find(key, st)
        if isinstance(tok, int) and tok < self.NU:
            return self.unit(tok)["status"]
        return "Working"

    def f_unit_status(self, v):
        xs = {x.strip().lower() for x in v.split(",") if x.strip()}
        bad = [x for x in xs if x not in {s.lower() for s in ED_UNIT_STATUSES}]
        if bad:
            raise ApiError(f"Некорректное значение параметра statuses: {bad[0]}")
        pred = lambda row: self.unit_status(row["Id"]).lower() in xs
        pred.on_key = lambda key: self.unit_status(key).lower() in xs
        return pred, None

    def unit_place(self, c):
        """(OfficeOrCompanyId, name, address, time zone) of a unit."""
        oi = c["oi"]
        tz = self.location(self.office_loc(oi))[1]
        if c["corp"]:
            j = c["comp"]
            return (self.tables["getcompanies"].key_at(j), self.comp_name(j),
                    f"г. {self.location(self.office_loc(oi))[0]}, офис заказчика", tz)
        return oi + 1, self.office_names[oi], self.office_address(oi), tz

    def lesson_dates(self, c, lo, hi, teacher=None):
        """[(ordinal, item)] of scheduled lessons of unit c in [lo, hi], by date."""
        out = []
        for it in c["items"]:
            if teacher is not None and it["teacher"] != teacher:
                continue
            b = max(lo, it["begin"])
            e = min(hi, it["end"] if it["end"] is not None else self.OPEN_END)
            if b > e:
                continue
            wd = it["wd"]
            first = b + (wd - (b - 1) % 7) % 7
            for o in range(first, e + 1, 7):
                out.append((o, it))
        if len(c["items"]) > 1:
            out.sort(key=lambda e: e[0])
        return out

    def unit_day(self, u, o, it):
        h = mix(self.salt["day"] ^ (u << 24) ^ o)
        cancelled = h % 100 < 3
        past = o < self.A
        ln = it["len"]
        d = {"Date": ds(o), "Minutes": ln, "Pass": cancelled}
        if cancelled or (h >> 8) % 100 < 3:
            d["Description"] = DAY_NOTES[(h >> 16) % len(DAY_NOTES)]
        d["ScheduleItemIds"] = [it["id"]]
        d["StudentPayableMinutes"] = 0.0 if cancelled else float(ln)
        d["TeacherPayableMinutes"] = 0.0 if cancelled else float(ln)
        return d, cancelled

    def day_accepted(self, u, o):
        """Whether the administrator accepted unit u's lesson on day o (per-student days)."""
        h = mix(self.salt["day"] ^ (u << 24) ^ o)
        return o < self.A and h % 100 >= 3 and (h >> 24) % 100 < 93

    def sched_item(self, c, it):
        e = {"Id": it["id"], "BeginDate": ds(it["begin"])}
        if it["end"] is not None:
            e["EndDate"] = ds(it["end"])
        e["BeginTime"] = hm(it["start"])
        e["EndTime"] = hm(min(it["start"] + it["len"], 23 * 60 + 59))
        e["Weekdays"] = 1 << it["wd"]
        if "room" in it:
            e["ClassroomId"] = it["room"]
            e["ClassroomName"] = f"Ауд. {it['room'] % 100}"
        if "link" in it:
            e["ClassroomLink"] = it["link"]
        t = it["teacher"]
        if t is not None:
            male, first, last, mid, photo, _ = self.teacher_core(t)
            tid = 2 * t + 2
            e["TeacherId"] = tid
            e["TeacherIds"] = [tid]
            e["Teacher"] = full_name(last, first, mid)
            e["Teachers"] = [e["Teacher"]]
            e["TeacherGenders"] = [male]
            e["TeacherPhotoUrls"] = [photo]
        return e

    def gen_ed_unit(self, key, u, ctx):
        c = self.unit(u)
        oid, oname, oaddr, tz = self.unit_place(c)
        row = {"Id": key, "Type": c["typ"], "Name": c["name"], "Corporative": c["corp"],
               "OfficeOrCompanyId": oid, "OfficeOrCompanyName": oname,
               "OfficeOrCompanyAddress": oaddr, "OfficeTimeZone": tz, "Discipline": c["disc"],
               "Level": c["level"], "Maturity": c["mat"], "LearningType": c["lt"],
               "StudentsCount": c["m"], "Vacancies": max(0, c["cap"] - c["m"])}
        # No Status, Created or Updated: real rows have none (the status exists only as the
        # statuses= filter, see unit_status).
        if c["desc"]:
            row["Description"] = c["desc"]
        if c["corp"]:
            row["CompanyContractNumber"] = f"К-{key}/{datetime.date.fromordinal(c['begin']).year}"
            row["CompanyContractDate"] = ds(c["begin"] - 10)
        if c["ef"]:
            row["ExtraFields"] = c["ef"]
        if c["assignee"] is not None:
            row["Assignee"] = self.emp_ref(c["assignee"])
        teacher = ctx.get("teacher")
        row["ScheduleItems"] = [self.sched_item(c, it) for it in c["items"]]
        rng = ctx.get("range")
        if rng:
            lessons = self.lesson_dates(c, rng[0], rng[1], teacher)
            mins = 0
            days = []
            want = ctx.get("days")
            for o, it in lessons:
                d, cancelled = self.unit_day(u, o, it)
                if not cancelled:
                    mins += it["len"]
                if want:
                    days.append(d)
            row["StudyUnitsInRange"] = units_str(mins)
            if days:
                row["Days"] = days
        if ctx.get("fiscal") and c["price"] is not None:
            p = self.price_info(c["price"])
            row["FiscalInfo"] = {"PriceId": p["Id"], "PriceName": p["Name"],
                                 "PriceValue": p["Value"], "Units": units_str(p["UnitsQuantity"]),
                                 "Units7": units_str(c["items"][0]["len"] * len(c["items"])),
                                 "Units28": units_str(4 * c["items"][0]["len"] * len(c["items"])),
                                 "Value": p["Value"],
                                 "Value7": money(p["ValueQuantity"] / 4),
                                 "Value28": money(p["ValueQuantity"])}
        if ctx.get("teacher_prices") and c["price"] is not None:
            tps = []
            for tid in sorted({it["teacher"] for it in c["items"] if it["teacher"] is not None}):
                p = self.price_info(c["price"])
                tps.append({"TeacherId": 2 * tid + 2, "PriceId": p["Id"], "PriceName": p["Name"],
                            "PriceUnits": units_str(60), "PriceUnitsQuantity": 60,
                            "PriceUnitsType": "Minutes",
                            "PriceValues": [{"Students": 1, "Value": money(900),
                                             "ValueCurrency": "руб.", "ValueQuantity": 900.0}]})
            if tps:
                row["TeacherPrices"] = tps
        return row

    # ----- memberships
    def members(self, u):
        """Sorted student indices of base unit u."""
        if u >= self.NU or self.NS == 0:
            return []
        m = self.unit_kind(u)[1]
        a, b, c, n = self.aff_mem.a, self.mem_b, self.aff_mem.c, self.NS
        base = u * a + c
        return sorted((base + j * b) % n for j in range(m))

    def units_of_student(self, s):
        """Base units that have student s as a member (ascending)."""
        if s >= self.NS:
            return []
        out = []
        n = self.NS
        for j in range(self.c["members_per_unit"]):
            if j >= n:
                break
            u0 = ((s - self.aff_mem.c - j * self.mem_b) * self.aff_mem.ainv) % n
            for u in range(u0, self.NU, n):
                if self.unit_kind(u)[1] > j:
                    out.append(u)
        return sorted(set(out))

    def membership(self, u, s):
        c = self.unit(u)
        r = R(self.salt["mem"] ^ (u << 32), s)
        mb = c["begin"] + r.n(45)
        if c["end"] is not None:
            mb = min(mb, c["end"])
            me = c["end"] if r.pct(80) else min(c["end"], mb + 30 + r.n(90))
        else:
            me = mb + 30 + r.n(300) if r.pct(25) else None
        status = "Stopped" if me is not None and me < self.A else ("Reserve" if r.pct(2) else "Normal")
        return c, r, mb, me, status

    def gen_member(self, key, u, s, ctx):
        c, r, mb, me, status = self.membership(u, s)
        oid, oname, _, _ = self.unit_place(c)
        sv = self.stu_view(s)
        row = {"EdUnitId": key[0], "EdUnitType": c["typ"], "EdUnitName": c["name"],
               "EdUnitCorporative": c["corp"], "EdUnitOfficeOrCompanyId": oid,
               "EdUnitOfficeOrCompanyName": oname, "EdUnitDiscipline": c["disc"],
               "EdUnitLevel": c["level"], "EdUnitLearningType": c["lt"]}
        if r.pct(40):
            row["EdUnitMaturity"] = c["mat"]
        row["StudentClientId"] = key[1]
        row["StudentName"] = full_name(sv["LastName"], sv["FirstName"], sv["MiddleName"])
        if sv["Mobile"]:
            row["StudentMobile"] = sv["Mobile"]
        if sv["Phone"]:
            row["StudentPhone"] = sv["Phone"]
        if sv["EMail"]:
            row["StudentEMail"] = sv["EMail"]
        ag = self.agents(self.salt["agents"], s, 25, self.stu_core(s)[2])
        if ag:
            row["StudentAgents"] = ag
        ef = self.extra_fields(R(self.salt["stu"] ^ 1, s), 20, key[1])
        if ef:
            row["StudentExtraFields"] = ef
        row["BeginDate"] = ds(mb)
        if me is not None:
            row["EndDate"] = ds(me)
        it0 = c["items"][0]
        row["BeginTime"] = hm(it0["start"])
        row["EndTime"] = hm(min(it0["start"] + it0["len"], 23 * 60 + 59))
        wmask = 0
        for it in c["items"]:
            wmask |= 1 << it["wd"]
        row["Weekdays"] = wmask
        row["Status"] = status
        lessons_total = r.n(40)
        row["StudyMinutes"] = lessons_total * it0["len"]
        row["StudyUnits"] = units_str(lessons_total * it0["len"])
        rng = ctx.get("range")
        if rng and ctx.get("days"):
            lo = max(rng[0], mb)
            hi = min(rng[1], me if me is not None else self.OPEN_END)
            days = []
            if lo <= hi:
                for o, it in self.lesson_dates(c, lo, hi):
                    ud, cancelled = self.unit_day(u, o, it)
                    if cancelled:
                        continue
                    h = mix(self.salt["sday"] ^ (u << 40) ^ (s << 20) ^ o)
                    past = o < self.A
                    absent = past and h % 100 < 11
                    payable = (not absent) or (h >> 8) % 100 < 30
                    # Minutes: this student's lesson (a late arrival is shorter).
                    late = not absent and (h >> 40) % 100 < 5
                    d = {"Date": ud["Date"], "Minutes": it["len"] - (15 if late else 0),
                         "Pass": absent,
                         "StudentPayableMinutes": float(it["len"]) if payable else 0.0,
                         "TeacherPayableMinutes": float(it["len"])}
                    if absent and (h >> 16) % 100 < 30:
                        d["Description"] = SDAY_NOTES[(h >> 24) % len(SDAY_NOTES)]
                    acc = self.day_accepted(u, o)
                    d["Accepted"] = acc
                    if acc and (h >> 32) % 100 < 2:
                        d["AcceptedDescription"] = "Проверено администратором"
                    days.append(d)
            if days:
                row["Days"] = days
        if ctx.get("payers"):
            row["Payers"] = [self.payer(c, s, key[1], row["StudentName"], r)]
        return row

    def payer(self, c, s, cid, name, r):
        p = self.price_info(c["price"]) if c["price"] is not None else None
        if c["corp"]:
            j = c["comp"]
            e = {"ClientId": self.comp_cid(j), "IsCompany": True, "Name": self.comp_name(j)}
        else:
            e = {"ClientId": cid, "IsCompany": False, "Name": name}
        e["Actual"] = True
        r.pct(60)    # (was ContractNumber, which no real client has: the draw keeps the data)
        mins = c["items"][0]["len"] * (4 + r.n(30))
        if p:
            e["PriceId"] = p["Id"]
            e["PriceName"] = p["Name"]
        e["PayableMinutes"] = mins
        e["PayableUnits"] = units_str(mins)
        val = round(mins / 45 * (600 + 50 * r.n(20)), 2)
        e["Value"] = money(val)
        e["ContractValue"] = money(val)
        if r.pct(20):
            e["DebtDate"] = ds(self.A - r.n(60))
        return e

    # ----- payments
    def pay_student(self, i):
        return self.aff_pay.f(i)

    def stu_pay_info(self, s):
        """(ClientId, ClientName as a JSON string literal, office index, currency) - cached."""
        edits = self.tables["getstudents"].st.edits
        if edits:
            cid = self.s_cid(s)
            if cid in edits:
                return (cid, json.dumps(self.stu_name(s), ensure_ascii=False),
                        self.stu_offices(s)[0], self.office_cur(self.stu_offices(s)[0]))
        v = self._pay_info.get(s)
        if v is None:
            male, first, last, mid, offs = self.stu_name_parts(s)
            oi = offs[0]
            v = (self.s_cid(s), '"' + (f"{last} {first} {mid}" if mid else f"{last} {first}") + '"',
                 oi, self.office_cur(oi))
            if len(self._pay_info) > 300000:
                self._pay_info.clear()
            self._pay_info[s] = v
        return v

    def pay_vals(self, i):
        h = mix(self.salt["pay"] ^ ((i * GOLD) & M64))
        h, sec = divmod(h, 43200)
        h, k = divmod(h, 100)
        h, ai = divmod(h, len(PAY_AMOUNTS))
        h, extra = divmod(h, 20)
        h, dd = divmod(h, 3)
        h, paidr = divmod(h, 100)
        h, pmi = divmod(h, 4)
        h, lag = divmod(h, 20)
        h, req = divmod(h, 3)
        h, desc = divmod(h, 5 * len(PAY_DESCR))
        amount = PAY_AMOUNTS[ai] + (100 * extra if extra < 5 else 0)
        if k < 87:
            typ = "Обучение"
        elif k < 93:
            typ, amount = "Возврат", -amount
        else:
            typ, amount = "Учебные материалы", amount // 10 + 350
        nn = self.c["payments"]
        o = self.S + (min(i, nn - 1) * self.SPAN) // max(nn, 1)
        date_o = o - dd
        paid = paidr < 93 or typ == "Возврат"
        if self.NS:
            cid, cname, oi, cur = self.stu_pay_info(self.aff_pay.f(i))
        else:
            cid, cname, oi, cur = None, None, 0, self.office_cur(0)
        return (dts(o, 32400 + sec), typ, ds(date_o),
                ds(date_o + (lag if lag < 4 else 0)) if paid else None,
                ds(date_o + 7) if not paid and req == 0 else None,
                "Paid" if paid else "Unpaid", oi, cid, cname, amount, cur,
                PAYMENT_METHODS[pmi], PAY_DESCR[desc] if desc < len(PAY_DESCR) else None)

    def gen_payment(self, key, i, ctx):
        (created, typ, date, paid, req, state, oi, cid, cname, amount, cur, pm,
         desc) = self.pay_vals(i)
        row = {"Id": key, "Created": created, "Type": typ, "Date": date}
        if paid:
            row["PaidDate"] = paid
        if req:
            row["RequiredPaidDate"] = req
        row["State"] = state
        row["OfficeOrCompanyId"] = oi + 1
        row["OfficeOrCompanyName"] = self.office_names[oi]
        if cid is not None:
            row["ClientId"] = cid
            row["ClientName"] = json.loads(cname)
        row["Value"] = money(amount, cur[0])
        row["ValueQuantity"] = float(amount)
        row["ValueCurrency"] = cur[1]
        row["PaymentMethodId"] = pm[0]
        row["PaymentMethodName"] = pm[1]
        if desc:
            row["Description"] = desc
        return row

    def json_payment(self, key, i, ctx):
        """Same row as gen_payment, as JSON text (fast path; checked equal by the self-test)."""
        (created, typ, date, paid, req, state, oi, cid, cname, amount, cur, pm,
         desc) = self.pay_vals(i)
        pc = self._pay_pieces
        k2 = (state, oi)
        p2 = pc.get(k2)
        if p2 is None:
            p2 = pc[k2] = (f',"State":"{state}","OfficeOrCompanyId":{oi + 1},'
                           f'"OfficeOrCompanyName":{self.office_names_json[oi]}')
        k3 = (amount, cur, pm)
        p3 = pc.get(k3)
        if p3 is None:
            p3 = pc[k3] = (f',"Value":"{money(amount, cur[0])}","ValueQuantity":{float(amount)!r},'
                           f'"ValueCurrency":"{cur[1]}","PaymentMethodId":{pm[0]},'
                           f'"PaymentMethodName":"{pm[1]}"')
        return "".join((
            f'{{"Id":{key},"Created":"{created}","Type":"{typ}","Date":"{date}"',
            f',"PaidDate":"{paid}"' if paid else "",
            f',"RequiredPaidDate":"{req}"' if req else "",
            p2,
            f',"ClientId":{cid},"ClientName":{cname}' if cid is not None else "",
            p3,
            f',"Description":"{desc}"}}' if desc else "}"))

    # ----- balances, ledgers, files, settings (one per student)
    def gen_balance(self, cid, s, ctx):
        r = R(self.salt["bal"], s)
        bal = 500 * r.n(40) - 500 * r.n(16)
        cur = self.office_cur(self.stu_offices(s)[0])[0] if self.NO else "руб."
        units = r.n(12) * 45 - r.n(5) * 45
        row = {"ClientId": cid, "ClientName": self.stu_name(s),
               "BalanceUnits": units_str(max(units, 0)), "BalanceMoney": money(max(bal, 0), cur),
               "DebtUnits": units_str(max(-units, 0)), "DebtMoney": money(max(-bal, 0), cur),
               "HasAnyDebtUnits": units < 0, "HasAnyDebtMoney": bal < 0,
               "HasAggregateDebtUnits": units < 0 and r.pct(50),
               "HasAggregateDebtMoney": bal < 0 and r.pct(70),
               "StudyBalance": {"BalanceMoney": money(max(bal, 0), cur),
                                "DebtMoney": money(max(-bal, 0), cur), "IsDebtMoney": bal < 0}}
        eb = []
        sv = None
        for u in self.units_of_student(s):
            c = self.unit(u)
            if sv is None:
                sv = self.stu_name(s)
            b = 500 * r.n(10) - 500 * r.n(5)
            un = 45 * (r.n(6) - r.n(3))
            eb.append({"EdUnitId": c["id"], "EdUnitType": c["typ"], "EdUnitName": c["name"],
                       "StudentName": sv, "BalanceUnits": units_str(max(un, 0)),
                       "BalanceMoney": money(max(b, 0), cur), "DebtUnits": units_str(max(-un, 0)),
                       "DebtMoney": money(max(-b, 0), cur), "IsDebtUnits": un < 0,
                       "IsDebtMoney": b < 0})
        if eb:
            row["EdUnitsBalances"] = eb
        return row

    def gen_ledger(self, cid, s, ctx):
        r = R(self.salt["ledger"], s)
        study = []
        pt = self.tables["getpayments"]
        pst = pt.st
        cur = self.office_cur(self.stu_offices(s)[0])[0] if s < self.NS else "руб."
        # The client's payments are ledger items: generated ones, and added ones (a payment
        # made since: the ledger shows it at once, as Hollihop's does).
        pays = [(pt.key_at(pi), pi) for pi in (self.aff_pay.inv(s, pt.n) if s < self.NS else ())
                if pi not in pst.dset]
        for key, tok in pays + [(k, t) for k, t in pst.added
                                if pst.edits.get(k, {}).get("ClientId") == cid]:
            p = pt.render(key, tok, {}, pst)
            if p.get("Type") == "Учебные материалы":
                continue
            study.append({"Type": "Study", "Income": p["ValueQuantity"] >= 0, "Value": p["Value"],
                          "Begin": p["Created"], "Description": p.get("Description", "Оплата")})
        for u in self.units_of_student(s):
            c = self.unit(u)
            for k in range(1 + r.n(3)):
                o = min(self.A - 1, c["begin"] + 30 * k + r.n(20))
                ln = c["items"][0]["len"] * (4 + r.n(5))
                study.append({"Type": "Study", "Income": False,
                              "Value": money(-round(ln / 45 * 650, 2), cur),
                              "Begin": dts(o, 9 * 3600 + r.n(10 * 3600)), "EdUnitId": c["id"],
                              "EdUnitName": c["name"], "Units": units_str(ln)})
        study.sort(key=lambda e: e["Begin"])
        other = []
        if r.pct(20):
            o = self.S + r.n(self.SPAN)
            other.append({"Type": "Supplies", "Income": False, "Value": money(-(350 + 50 * r.n(20)), cur),
                          "Begin": dts(o, 36000 + r.n(20000)), "Description": r.pick(SUPPLY_NAMES)})
        row = {"Study": {"Items": study} if study else {},
               "OtherPayments": {"Items": other} if other else {}}
        return row

    def files_count(self, s):
        mx = self.c["files_per_client"]
        if not mx:
            return 0
        h = mix(self.salt["fcount"] ^ s)
        return 0 if h % 100 < 40 else 1 + (h >> 8) % mx

    def gen_file(self, key, s, j, ctx):
        r = R(self.salt["files"], key)
        o = self.S + r.n(self.SPAN)
        cid = self.s_cid(s)
        kind = r.pick((("Договор", "pdf"), ("Скан паспорта", "jpg"), ("Анкета", "docx"),
                       ("Согласие на обработку ПД", "pdf"), ("Чек", "png")))
        row = {"Id": key, "ClientId": cid, "Created": dts(o, 36000 + r.n(30000)),
               "Name": f"{kind[0]} {cid}.{kind[1]}",
               "Url": f"/Files/fake.t8s.ru/Clients/{cid}/{key}.{kind[1]}",
               "Size": 10000 + r.n(3000000)}
        if r.pct(30):
            row["Description"] = r.pick(("Подписан", "Оригинал в офисе", "Копия"))
        return row

    def gen_settings(self, cid, s, ctx):
        r = R(self.salt["stu"] ^ 99, s)
        en = r.pct(35)
        row = {"ClientId": cid, "Enabled": en}
        if en:
            sv = self.stu_view(s)
            row["Login"] = sv["EMail"] or f"student{cid}"
            if r.pct(70):
                row["LastLoginDate"] = dts(self.A - 1 - r.n(200), 30000 + r.n(40000))
        for k in ("ShowSchedule", "ShowPayments", "ShowBalance", "ShowHomework", "ShowMarks",
                  "AllowOnlinePayment"):
            row[k] = en and r.pct(75)
        return row

    # ----- ed unit leads, lesson plans
    def eul_count(self, u):
        mx = self.c["leads_per_unit"]
        if not mx or not self.NL:
            return 0
        return min(mix(self.salt["eulk"] ^ u) % (mx + 1), self.NL)

    def eul_leads(self, u):
        n = self.NL
        base = u * self.aff_eul.a + self.aff_eul.c
        return sorted((base + j * self.eul_b) % n for j in range(self.eul_count(u)))

    def gen_eul(self, key, u, li, ctx):
        c = self.unit(u)
        oid, oname, _, _ = self.unit_place(c)
        r = R(self.salt["eul"] ^ (u << 32), li)
        lessons = self.lesson_dates(c, c["begin"], c["end"] if c["end"] is not None else self.A + 30)
        if lessons:
            o, it = lessons[r.n(len(lessons))]
        else:
            o, it = c["begin"], c["items"][0]
        row = {"EdUnitId": key[0], "EdUnitType": c["typ"], "EdUnitName": c["name"],
               "EdUnitDiscipline": c["disc"], "EdUnitOfficeOrCompanyId": oid,
               "EdUnitOfficeOrCompanyName": oname, "LeadId": key[1], "Date": ds(o),
               "BeginTime": hm(it["start"]),
               "EndTime": hm(min(it["start"] + it["len"], 23 * 60 + 59)),
               "Visited": o < self.A and r.pct(75)}
        return row

    def gen_lesson_plan(self, key, i, ctx):
        r = R(self.salt["lp"] ^ 3, i)
        u = self.aff_lp.f(i) if self.NU else 0
        row = {"Id": key}
        if self.NU:
            c = self.unit(u)
            row["EdUnitId"] = c["id"]
            row["EdUnitName"] = c["name"]
            hi = c["end"] if c["end"] is not None else self.A + 30
            row["Date"] = ds(c["begin"] + r.n(max(1, hi - c["begin"])))
            t = c["items"][0]["teacher"]
            if t is not None:
                row["TeacherId"] = 2 * t + 2
        row["Topic"] = r.pick(TOPICS)
        if r.pct(50):
            row["Description"] = "Лексика, грамматика, аудирование" if r.pct(50) else "Разбор, практика"
        if r.pct(40):
            row["Homework"] = f"Упр. {1 + r.n(30)}–{31 + r.n(30)}, стр. {1 + r.n(200)}"
        return row

    # ----- supplies, materials, announcements
    def gen_supply(self, key, i, ctx):
        r = R(self.salt["sup"] ^ 3, i)
        s = self.aff_sup.f(i) if self.NS else 0
        n = self.tables["getsupplies"].n
        o = self.S + (min(i, n - 1) * self.SPAN) // max(n, 1)
        oi = self.stu_offices(s)[0] if self.NS else 0
        cur = self.office_cur(oi)
        qty = 1 + (r.n(10) == 0)
        price = 350 + 50 * r.n(30)
        row = {"Id": key, "Created": dts(o, 36000 + r.n(30000)), "Date": ds(o),
               "OfficeOrCompanyId": oi + 1, "OfficeOrCompanyName": self.office_names[oi]}
        if self.NS:
            row["ClientId"] = self.s_cid(s)
            row["ClientName"] = self.stu_name(s)
        row["Name"] = r.pick(SUPPLY_NAMES)
        row["Quantity"] = qty
        row["Price"] = money(price, cur[0])
        row["Value"] = money(price * qty, cur[0])
        row["ValueQuantity"] = float(price * qty)
        return row

    def gen_material(self, key, i, ctx):
        r = R(self.salt["mat"], i)
        di = r.n(len(DISCIPLINES))
        typ = r.pick(MATERIAL_TYPES)
        row = {"Id": key, "Name": f"{typ}: {DISCIPLINES[di]} {1 + r.n(12)}", "Type": typ,
               "Discipline": DISCIPLINES[di]}
        if r.pct(50):
            row["Level"] = r.pick(LANG_LEVELS if di < 4 else GEN_LEVELS)
        if r.pct(60):
            row["Url"] = f"/Files/fake.t8s.ru/EdMaterials/{key}.pdf"
        if r.pct(30):
            row["Description"] = "Для занятий в классе и дома"
        o = self.S + r.n(self.SPAN)
        row["Created"] = dts(o, 36000 + r.n(30000))
        return row

    def gen_announcement(self, key, i, ctx):
        r = R(self.salt["ann"], i)
        n = self.tables["getannouncements"].n
        o = self.S + (min(i, n - 1) * self.SPAN) // max(n, 1)
        tg = ("Students", "Students", "Students", "Employees", "Employees", "Companies")[r.n(6)]
        row = {"Id": key, "Created": dts(o, 36000 + r.n(30000)), "Target": tg,
               "Title": r.pick(ANN_TITLES),
               "Text": "Уважаемые " + {"Students": "ученики и родители", "Employees": "коллеги",
                                       "Companies": "партнёры"}[tg] + "! " +
                       r.pick(("Занятия 1–3 мая не проводятся.", "Ждём вас на празднике!",
                               "Изменилось расписание, проверьте личный кабинет."))}
        if self.NE and r.pct(70):
            row["Author"] = self.emp_ref(r.n(self.NE))["FullName"]
        if r.pct(50):
            row["BeginDate"] = ds(o)
            row["EndDate"] = ds(o + 7 + r.n(30))
        return row

    # ----- dictionaries
    def price_info(self, i):
        r = R(self.salt["price"], i)
        di = i % len(DISCIPLINES)
        kind = r.n(3)
        if kind == 0:
            uq, ut, nm = 60 * (4 + r.n(8)), "Minutes", f"Абонемент {DISCIPLINES[di]}"
        elif kind == 1:
            uq, ut, nm = 8, "Lessons", f"8 занятий: {DISCIPLINES[di]}"
        else:
            uq, ut, nm = 1, "Month", f"Месяц: {DISCIPLINES[di]}"
        val = float(1000 * (3 + r.n(30)))
        return {"Id": i + 1, "Name": nm + (f" ({i // len(DISCIPLINES) + 1})" if i >= len(DISCIPLINES) else ""),
                "Value": money(val), "ValueQuantity": val, "UnitsQuantity": uq, "UnitsType": ut,
                "r": r}

    def gen_price(self, key, i, ctx):
        p = self.price_info(i)
        r = p.pop("r")
        p["Id"] = key
        if r.pct(60):
            o1 = r.n(self.NO)
            p["Offices"] = self.offices_ref(tuple(sorted({o1, (o1 + 1) % self.NO})))
        p["PriceValues"] = [{"Students": 1, "Value": p["Value"], "ValueCurrency": "руб.",
                             "ValueQuantity": p["ValueQuantity"]}]
        if r.pct(50):
            v2 = round(p["ValueQuantity"] * 0.8)
            p["PriceValues"].append({"Students": 2, "Value": money(v2), "ValueCurrency": "руб.",
                                     "ValueQuantity": float(v2)})
        return p

    def gen_discount(self, key, i, ctx, sur=False):
        r = R(self.salt["sur" if sur else "disc"], i)
        names = (("Доплата за выезд", "Доплата за праздничный день", "Доплата за материалы",
                  "Доплата за индивидуальный формат") if sur else
                 ("Семейная скидка", "Скидка многодетным", "Скидка за второе направление",
                  "Скидка по акции", "Скидка сотрудникам", "Скидка за раннюю оплату"))
        nm = names[i % len(names)] + (f" {i // len(names) + 1}" if i >= len(names) else "")
        row = {"Id": key, "Name": nm}
        if r.pct(60):
            pc = 5 * (1 + r.n(6))
            row["Type"] = "Percent"
            row["ValueQuantity"] = float(pc)
            row["Value"] = f"{pc}%"
        else:
            v = 100 * (2 + r.n(30))
            row["Type"] = "Money"
            row["ValueQuantity"] = float(v)
            row["Value"] = money(v)
        if r.pct(40):
            row["Description"] = "Действует при оплате абонемента"
        return row

    # ----- the tables
    def _build_tables(self):
        c = self.c
        T = self.tables

        def add(t):
            T[t.method.lower()] = t

        loc_n = c["locations"]
        add(SmallTable(self, "GetLocations", "Locations", loc_n, lambda i: i + 1,
                       gen=self.gen_location,
                       filters={"id": f_eq("Id"), "name": f_term("Name")}))
        off_n = c["offices"]
        add(SmallTable(self, "GetOffices", "Offices", off_n, lambda i: i + 1, gen=self.gen_office,
                       filters={"id": f_eq("Id"), "name": f_term("Name"),
                                "locationid": lambda v: ((lambda row, x=self.location(int(v) - 1)[0]:
                                                          row.get("Location") == x), None)}))
        add(IdTable(self, "GetStudyRequests", "StudyRequests", c["study_requests"], start=1, step=2,
                    jitter=2, gen=self.gen_study_request, stamps=("Created",),
                    filters={"id": f_eq("Id"), "from": f_ge("Created"), "to": f_le("Created")}))
        leads = IdTable(self, "GetLeads", "Leads", c["leads"], start=1, step=2, jitter=2,
                        gen=self.gen_lead, stamps=("Created", "Updated"), now=True)
        leads.filters = {
            "id": f_eq("Id", cands=lambda x: [i for i in [leads.index_of(x)] if i is not None]),
            "studentclientid": f_eq("StudentClientId", cands=self.cand_leads_of_client),
            "attached": f_present("StudentClientId"),
            "officeorcompanyid": f_office(),
            "createdfrom": f_ge("Created"), "createdto": f_le("Created"),
            "lastupdatedfrom": f_ge("Updated"),
            "addressdatefrom": f_ge("AddressDate"), "addressdateto": f_le("AddressDate"),
            "term": f_term("FirstName", "LastName", "MiddleName", "Mobile", "Phone", "EMail")}
        add(leads)
        add(SmallTable(self, "GetLeadStatuses", "Statuses", len(LEAD_STATUSES),
                       lambda i: LEAD_STATUSES[i][0] if i < len(LEAD_STATUSES) else 100 + i,
                       gen=lambda k, i, ctx: ({"Id": k, "Name": LEAD_STATUSES[i][1],
                                               "Type": LEAD_STATUSES[i][2]}
                                              if i < len(LEAD_STATUSES) else
                                              {"Id": k, "Name": f"Статус {k}", "Type": "regular"})))
        add(ActionsTable(self, "GetHistoryModifyLeadStatus", "Actions", self.NL))
        stu = IdTable(self, "GetStudents", "Students", c["students"], key_fn=self.s_cid,
                      index_fn=self._s_index_base, gen=self.gen_student,
                      stamps=("Created", "Updated"), now=True, key_fields=("ClientId",))
        stu.filters = {
            "clientid": f_eq("ClientId", cands=lambda x: [i for i in [stu.index_of(x)] if i is not None]),
            "id": f_eq("Id", cands=lambda x: [i for i in [self.s_index_by_id(x)]
                                              if i is not None and i < self.NS]),
            "statuses": f_in("Status"), "lastupdatedfrom": f_ge("Updated"),
            "edunitofficeorcompanyid": f_office(),
            "term": f_term("FirstName", "LastName", "MiddleName", "Mobile", "Phone", "EMail")}
        add(stu)
        add(IdTable(self, "GetCompanies", "Companies", c["companies"], start=5001, step=1,
                    gen=self.gen_company, stamps=("Created", "Updated"),
                    filters={"id": f_eq("Id")}))
        add(SmallTable(self, "GetClientStatuses", "ClientStatuses" if self.alt else "Statuses",
                       len(CLIENT_STATUSES), lambda i: i + 1,
                       gen=lambda k, i, ctx: {"Id": k, "Name": CLIENT_STATUSES[i][1]
                                              if i < len(CLIENT_STATUSES) else f"Статус {k}"}))
        add(FilesTable(self, "GetClientFiles", "ClientFiles", self.NS))
        add(IdTable(self, "GetStudentPersonalOfficeSettings", "StudentPersonalOfficeSettings",
                    c["students"], key_fn=self.s_cid, index_fn=self._s_index_base,
                    gen=self.gen_settings, key_fields=("ClientId",),
                    required=(("clientid", "Требуется поле ClientId"),)))
        emp = IdTable(self, "GetEmployees", "Employees", c["employees"], start=1, step=2,
                      gen=self.gen_employee)
        emp.filters = {"id": f_eq("Id"), "corporative": f_bool("Corporative")}
        add(emp)
        add(IdTable(self, "GetTeachers", "Teachers", c["teachers"], start=2, step=2,
                    gen=self.gen_teacher, filters={"id": f_eq("Id"), "fired": f_bool("Fired")}))
        add(SmallTable(self, "GetEmployeeStatuses", "EmployeeStatuses" if self.alt else "Statuses",
                       len(EMPLOYEE_STATUSES), lambda i: i + 1,
                       gen=lambda k, i, ctx: {"Id": k, "Name": EMPLOYEE_STATUSES[i][1]
                                              if i < len(EMPLOYEE_STATUSES) else f"Статус {k}"}))
        units = IdTable(self, "GetEdUnits", "EdUnits", c["ed_units"], start=101, step=2, jitter=2,
                        gen=self.gen_ed_unit, now=True)
        # ASSUMPTION: without statuses= the server returns the active units only. Nobody has
        # published the real default; this is the unsafe reading (a client that relies on
        # the default loses stopped and finished units), so clients are tested against it.
        units.defaults = {"statuses": ",".join(ED_UNIT_ACTIVE)}
        units.filters = {
            "id": f_eq("Id", cands=lambda x: [i for i in [units.index_of(x)] if i is not None]),
            "types": f_in("Type"), "statuses": self.f_unit_status,
            "officeorcompanyid": f_eq("OfficeOrCompanyId"), "disciplines": f_in("Discipline"),
            "levels": f_in("Level"), "maturities": f_in("Maturity"),
            "learningtypes": f_in("LearningType"), "corporative": f_bool("Corporative"),
            "teacherid": lambda v: ((lambda row, x=int(v): any(
                x in e.get("TeacherIds", ()) for e in row.get("ScheduleItems", ()))), None)}
        add(units)
        add(MembersTable(self, "GetEdUnitStudents", "EdUnitStudents", self.NU))
        add(EdUnitLeadsTable(self, "GetEdUnitLeads", "EdUnitLeads", self.NU))
        add(IdTable(self, "GetLessonPlans", "LessonPlans", c["lesson_plans"], start=1, step=1,
                    gen=self.gen_lesson_plan, flat=True,
                    filters={"id": f_eq("Id"), "edunitid": f_eq("EdUnitId"),
                             "datefrom": f_ge("Date"), "dateto": f_le("Date", True)}))
        add(SmallTable(self, "GetDisciplines", "Disciplines", len(DISCIPLINES),
                       lambda i: DISCIPLINES[i] if i < len(DISCIPLINES) else f"Дисциплина {i + 1}",
                       gen=lambda k, i, ctx: k, strings=True, key_types=(str,),
                       key_fields=("",)))
        add(SmallTable(self, "GetLevels", "Levels", len(LEVELS),
                       lambda i: LEVELS[i][0] if i < len(LEVELS) else f"Уровень {i + 1}",
                       gen=lambda k, i, ctx: {"Name": k, "Disciplines": list(LEVELS[i][1])
                                              if i < len(LEVELS) else [DISCIPLINES[0]]},
                       key_fields=("Name",), key_types=(str,)))
        if self.alt:
            lt = SmallTable(self, "GetLearningTypes", "LearningTypes", len(LEARNING_TYPES),
                            lambda i: LEARNING_TYPES[i] if i < len(LEARNING_TYPES) else f"Тип {i + 1}",
                            gen=lambda k, i, ctx: {"Name": k}, key_fields=("Name",),
                            key_types=(str,))
        else:
            lt = SmallTable(self, "GetLearningTypes", "LearningTypes", len(LEARNING_TYPES),
                            lambda i: LEARNING_TYPES[i] if i < len(LEARNING_TYPES) else f"Тип {i + 1}",
                            gen=lambda k, i, ctx: k, strings=True, key_fields=("",),
                            key_types=(str,))
        add(lt)
        add(SmallTable(self, "GetPrices", "Prices", c["prices"], lambda i: i + 1, gen=self.gen_price))
        add(SmallTable(self, "GetDiscounts", "Discounts", c["discounts"], lambda i: i + 1,
                       gen=self.gen_discount))
        add(SmallTable(self, "GetSurcharges", "Surcharges", c["surcharges"], lambda i: i + 1,
                       gen=lambda k, i, ctx: self.gen_discount(k, i, ctx, True)))
        pay = IdTable(self, "GetPayments", "Payments", c["payments"], start=1, step=2, jitter=2,
                      gen=self.gen_payment, gen_json=self.json_payment, stamps=("Created",),
                      flat=True)
        pay.filters = {
            "id": f_eq("Id", cands=lambda x: [i for i in [pay.index_of(x)] if i is not None]),
            "clientid": f_eq("ClientId", cands=self.cand_payments_of_client),
            "createdfrom": f_ge("Created"), "createdto": f_le("Created"),
            "datefrom": f_ge("Date"), "dateto": f_le("Date", True),
            "officeorcompanyid": f_eq("OfficeOrCompanyId")}
        add(pay)
        bal = IdTable(self, "GetBalances", "Balances", c["students"], key_fn=self.s_cid,
                      index_fn=self._s_index_base, gen=self.gen_balance, key_fields=("ClientId",),
                      required=(("balancedate", "Требуется поле BalanceDate"),))
        bal.filters = {"clientid": f_eq("ClientId", cands=lambda x: [i for i in [bal.index_of(x)]
                                                                     if i is not None])}
        add(bal)
        add(IdTable(self, "GetIncomesAndOutgoes", None, c["students"], key_fn=self.s_cid,
                    index_fn=self._s_index_base, gen=self.gen_ledger, key_fields=("ClientId",),
                    required=(("clientid", "Требуется поле ClientId"),)))
        sup = IdTable(self, "GetSupplies", "Supplies", c["supplies"], start=1, step=1,
                      gen=self.gen_supply, stamps=("Created",), flat=True)
        sup.filters = {"id": f_eq("Id"), "clientid": f_eq("ClientId",
                                                          cands=self.cand_supplies_of_client),
                       "datefrom": f_ge("Date"), "dateto": f_le("Date", True)}
        add(sup)
        add(IdTable(self, "GetEdMaterials", "EdMaterials", c["ed_materials"], start=1, step=1,
                    gen=self.gen_material, stamps=("Created",), flat=True, filters={"id": f_eq("Id")}))
        add(IdTable(self, "GetAnnouncements", "Announcements", c["announcements"], start=1, step=1,
                    gen=self.gen_announcement, stamps=("Created",), flat=True,
                    required=(("targets", "Обязательное поле targets"),),
                    filters={"id": f_eq("Id"), "targets": f_in("Target")}))
        # Rows that are a function of (key, parameters) alone: their texts are kept
        # (Table.row_text). Not those that show another table's edits (a student's name in
        # memberships, balances, payments, supplies, settings; a client's payments in the
        # ledger), nor students asked with their study requests.
        for m in ("getleads", "getstudyrequests", "gethistorymodifyleadstatus", "getedunits",
                  "getedunitleads", "getlessonplans", "getteachers", "getemployees",
                  "getcompanies", "getedmaterials", "getannouncements", "getstudents"):
            T[m].pure = True
        T["getstudents"].pure_unless = ("study_requests",)

    def _s_index_base(self, cid):
        i = self.s_index(cid)
        return i if i is not None and i < self.NS else None

    def cand_payments_of_client(self, cid):
        s = self._s_index_base(cid)
        return [] if s is None else list(self.aff_pay.inv(s, self.tables["getpayments"].n))

    def cand_supplies_of_client(self, cid):
        s = self._s_index_base(cid)
        return [] if s is None else list(self.aff_sup.inv(s, self.tables["getsupplies"].n))

    def cand_leads_of_client(self, cid):
        s = self._s_index_base(cid)
        return [] if s is None else [li for li in self.aff_lead.inv(s, self.NL)
                                     if self.lead_attach(li) == s]


class MembersTable(GroupedTable):
    key_fields = ("EdUnitId", "StudentClientId")
    key_types = (int, int)

    def __init__(self, d, method, root, nparents):
        super().__init__(d, method, root, nparents)
        self.filters = {
            "edunitid": f_eq("EdUnitId", cands=self.cand_unit),
            "studentclientid": f_eq("StudentClientId", cands=self.cand_student),
            "statuses": f_in("Status"), "edunittypes": f_in("EdUnitType"),
            "edunitofficeorcompanyid": f_eq("EdUnitOfficeOrCompanyId"),
            "edunitcorporative": f_bool("EdUnitCorporative")}

    def child_count(self, p):
        return self.d.unit_kind(p)[1] if self.d.NS else 0

    def children_of(self, p):
        return self.d.members(p)

    def child_key(self, p, s, i):
        return (self.d.unit_id(p), self.d.s_cid(s))

    def gen_child(self, key, p, s, i, ctx):
        return self.d.gen_member(key, p, s, ctx)

    def gen_added(self, key, tok, ctx):
        return self.d.gen_member(key, tok[1], tok[2], ctx)

    def index_of(self, key):
        d = self.d
        u = d.tables["getedunits"].index_of(key[0])
        s = d._s_index_base(key[1])
        if u is None or s is None or u >= self.nparents:
            return None
        mem = d.members(u)
        k = bisect.bisect_left(mem, s)
        if k < len(mem) and mem[k] == s:
            return self.prefix[u] + k
        return None

    def cand_unit(self, eid):
        u = self.d.tables["getedunits"].index_of(eid)
        return [] if u is None or u >= self.nparents else list(self.parent_range(u))

    def cand_student(self, cid):
        d = self.d
        s = d._s_index_base(cid)
        if s is None:
            return []
        out = []
        for u in d.units_of_student(s):
            mem = d.members(u)
            out.append(self.prefix[u] + mem.index(s))
        return sorted(out)

    def new_token(self, seq, spec):
        d = self.d
        ut, stt = d.tables["getedunits"], d.tables["getstudents"]
        if "EdUnitId" in spec:
            u = ut.find(int(spec["EdUnitId"]))
            if u is None:
                raise ControlError("no such EdUnitId")
        else:
            ks = ut.keys()
            if not ks:
                raise ControlError("no ed units")
            u = ut.find(ks[-1])
        if "StudentClientId" in spec:
            s = stt.find(int(spec["StudentClientId"]))
            if s is None:
                raise ControlError("no such StudentClientId")
            key = (d.unit_id(u), d.s_cid(s))
            if self.find(key) is not None:
                raise ControlError(f"membership {list(key)} exists")
            return key, ("a", u, s)
        for key_s in reversed(stt.keys()):
            s = stt.find(key_s)
            key = (d.unit_id(u), d.s_cid(s))
            if self.find(key) is None:
                return key, ("a", u, s)
        raise ControlError("no free student for this unit")


class EdUnitLeadsTable(GroupedTable):
    flat = True
    key_fields = ("EdUnitId", "LeadId")
    key_types = (int, int)

    def __init__(self, d, method, root, nparents):
        super().__init__(d, method, root, nparents)
        self.filters = {"edunitid": f_eq("EdUnitId", cands=self.cand_unit),
                        "leadid": f_eq("LeadId")}

    def child_count(self, p):
        return self.d.eul_count(p)

    def children_of(self, p):
        return self.d.eul_leads(p)

    def child_key(self, p, li, i):
        return (self.d.unit_id(p), self.d.lead_id(li))

    def gen_child(self, key, p, li, i, ctx):
        return self.d.gen_eul(key, p, li, ctx)

    def gen_added(self, key, tok, ctx):
        return self.d.gen_eul(key, tok[1], tok[2], ctx)

    def index_of(self, key):
        d = self.d
        u = d.tables["getedunits"].index_of(key[0])
        li = d.tables["getleads"].index_of(key[1])
        if u is None or li is None or u >= self.nparents:
            return None
        ls = d.eul_leads(u)
        k = bisect.bisect_left(ls, li)
        if k < len(ls) and ls[k] == li:
            return self.prefix[u] + k
        return None

    def cand_unit(self, eid):
        u = self.d.tables["getedunits"].index_of(eid)
        return [] if u is None or u >= self.nparents else list(self.parent_range(u))

    def new_token(self, seq, spec):
        d = self.d
        ut, lt = d.tables["getedunits"], d.tables["getleads"]
        u = ut.find(int(spec["EdUnitId"])) if "EdUnitId" in spec else ut.find(ut.keys()[-1])
        if u is None:
            raise ControlError("no such EdUnitId")
        cands = [int(spec["LeadId"])] if "LeadId" in spec else list(reversed(lt.keys()))
        for lk in cands:
            li = lt.find(lk)
            if li is None:
                continue
            key = (d.unit_id(u), lk)
            if self.find(key) is None:
                return key, ("a", u, li)
        raise ControlError("no free lead for this unit")


class ActionsTable(GroupedTable):
    flat = True
    key_fields = ("LeadId", "DateTime", "AfterId")
    key_types = (int, str, int)

    def __init__(self, d, method, root, nparents):
        super().__init__(d, method, root, nparents)
        self.filters = {"leadid": f_eq("LeadId", cands=self.cand_lead),
                        "datetimefrom": f_ge("DateTime")}

    def child_count(self, p):
        return self.d.chain_len(p)

    def children_of(self, p):
        return self.d.lead_chain(p)

    def child_key(self, p, ch, i):
        return (self.d.lead_id(p), dts(ch[0], ch[1]), ch[2])

    def gen_child(self, key, p, ch, i, ctx):
        return {"LeadId": key[0], "DateTime": key[1], "AfterId": key[2],
                "AfterName": LEAD_STATUS_NAME.get(key[2], f"Статус {key[2]}")}

    def gen_added(self, key, tok, ctx):
        return self.gen_child(key, None, None, None, ctx)

    def index_of(self, key):
        p = self.d.tables["getleads"].index_of(key[0])
        if p is None:
            return None
        for j, ch in enumerate(self.d.lead_chain(p)):
            if (dts(ch[0], ch[1]), ch[2]) == (key[1], key[2]):
                return self.prefix[p] + j
        return None

    def cand_lead(self, lid):
        p = self.d.tables["getleads"].index_of(lid)
        return [] if p is None else list(self.parent_range(p))

    def new_token(self, seq, spec):
        d = self.d
        lt = d.tables["getleads"]
        lk = int(spec["LeadId"]) if "LeadId" in spec else lt.keys()[-1]
        if lt.find(lk) is None:
            raise ControlError("no such LeadId")
        after = int(spec.get("AfterId", LEAD_STATUSES[(seq % (len(LEAD_STATUSES) - 1)) + 1][0]))
        if spec.get("DateTime"):
            key = (lk, spec["DateTime"], after)
            if self.find(key) is not None:
                raise ControlError("action exists")
            return key, ("a",)
        # "now", moved on a second while the key is taken: DateTime has 1 s resolution, so two
        # adds within one second would otherwise collide on (LeadId, DateTime, AfterId).
        when = d.bump(None)
        while self.find((lk, when, after)) is not None:
            when = d.bump(when)
        return (lk, when, after), ("a",)


class FilesTable(GroupedTable):
    flat = True
    key_fields = ("Id",)
    key_types = (int,)
    stamps = ("Created",)
    required = (("clientid", "Требуется поле ClientId"),)

    def __init__(self, d, method, root, nparents):
        super().__init__(d, method, root, nparents)
        self.filters = {"clientid": f_eq("ClientId", cands=self.cand_client)}
        self.fsalt = mix(d.seed ^ 0xF11E5)

    def file_id(self, i):
        return 1 + 2 * i + (mix(self.fsalt ^ i) & 1)

    def child_count(self, p):
        return self.d.files_count(p)

    def children_of(self, p):
        return range(self.d.files_count(p))

    def child_key(self, p, j, i):
        return self.file_id(i)

    def gen_child(self, key, p, j, i, ctx):
        return self.d.gen_file(key, p, j, ctx)

    def gen_added(self, key, tok, ctx):
        return self.d.gen_file(key, tok[1], 0, ctx)

    def index_of(self, key):
        if not isinstance(key, int):
            return None
        i = (key - 1) // 2
        if 0 <= i < self.n and self.file_id(i) == key:
            return i
        return None

    def cand_client(self, cid):
        s = self.d._s_index_base(cid)
        return [] if s is None else list(self.parent_range(s))

    def new_token(self, seq, spec):
        d = self.d
        stt = d.tables["getstudents"]
        cid = int(spec["ClientId"]) if "ClientId" in spec else stt.keys()[-1]
        s = stt.find(cid)
        if s is None:
            raise ControlError("no such ClientId")
        return self.file_id(self.n + seq), ("a", s)


# --------------------------------------------------------------------------------------------
# the application (config, stats, faults, rate limit, dispatch)

METHODS = ("GetLocations GetOffices GetStudyRequests GetLeads GetLeadStatuses "
           "GetHistoryModifyLeadStatus GetStudents GetCompanies GetClientStatuses GetClientFiles "
           "GetStudentPersonalOfficeSettings GetEmployees GetTeachers GetEmployeeStatuses "
           "GetEdUnits GetEdUnitStudents GetEdUnitLeads GetLessonPlans GetDisciplines GetLevels "
           "GetLearningTypes GetPrices GetDiscounts GetSurcharges GetPayments GetBalances "
           "GetIncomesAndOutgoes GetSupplies GetEdMaterials GetAnnouncements").split()
FAULT_KINDS = ("http500", "slow", "drop", "malformed", "error_body", "ratelimit", "ban",
               "body", "dup_key", "no_key", "loop")


class App:
    def __init__(self, args):
        self.args = args
        self.authkey = args.authkey
        self.verbose = args.verbose
        self.rate_limit = args.rate_limit
        self.rate_window = args.rate_window
        self.rate_status = args.rate_limit_status
        self.error_status = args.error_status
        self.max_take = args.max_take
        self.default_take = args.default_take
        self.emp_quirk = args.employees_photo_500
        self.empty_omit = args.alt_shapes
        self.lock = threading.Lock()
        self.mlock = threading.Lock()
        self.hits = collections.deque()
        self.in_flight = 0         # API calls being answered now (stats: in_flight_max)
        self.faults = []
        self.count_cache = {}
        self.reset_stats()
        self.counts = counts_from_args(args)
        self.anchor = datetime.date.fromisoformat(args.anchor_date)
        self.data = Data(args.seed, self.counts, self.anchor, args.alt_shapes)

    def reset_stats(self):
        with self.lock:
            self.stats = {"requests_total": 0, "requests": collections.Counter(),
                          "rate_limited": 0, "rate_limited_by_method": collections.Counter(),
                          "faults_served": 0, "faults_by_kind": collections.Counter(),
                          "bad_auth": 0, "param_errors": 0, "unknown_method": 0,
                          "http500_employees": 0, "rows_served": 0, "bytes_sent": 0,
                          "control_requests": 0, "started": now_str(),
                          "in_flight_max": 0}

    def flight(self, n):
        """n = 1 when an API call comes in, -1 when it is answered."""
        with self.lock:
            self.in_flight += n
            if self.in_flight > self.stats["in_flight_max"]:
                self.stats["in_flight_max"] = self.in_flight

    def stat(self, key, n=1, sub=None):
        with self.lock:
            if sub is None:
                self.stats[key] += n
            else:
                self.stats[key][sub] += n

    def retry_after(self):
        """Whole seconds until the rate window has room again (at least 1)."""
        with self.lock:
            if not self.hits:
                return 1
            return max(1, math.ceil(self.hits[0] + self.rate_window - time.monotonic()))

    def rate_ok(self):
        if self.rate_limit <= 0:
            return True
        now = time.monotonic()
        with self.lock:
            h = self.hits
            edge = now - self.rate_window
            while h and h[0] <= edge:
                h.popleft()
            if len(h) >= self.rate_limit:
                return False
            h.append(now)
            return True

    def take_fault(self, method):
        with self.lock:
            for f in self.faults:
                if f["method"] not in ("*", method.lower()):
                    continue
                if f["served"] >= f["count"] >= 0:
                    continue
                if f["seen"] < f["after"]:
                    f["seen"] += 1
                    continue
                f["seen"] += 1
                f["served"] += 1
                return f
        return None


def counts_from_args(args):
    base = dict(SCALES[args.scale])
    for k in COUNT_FIELDS:
        v = getattr(args, k, None)
        if v is not None:
            base[k] = v
    return base


def make_ctx(params):
    ctx = {}
    df, dt_ = params.get("datefrom"), params.get("dateto")
    if df and dt_:
        try:
            lo = parse_dt(df).date().toordinal()
            hi = parse_dt(dt_).date().toordinal()
        except ValueError:
            raise ApiError("Некорректное значение параметра dateFrom/dateTo")
        ctx["range"] = (lo, hi)
    if parse_bool(params.get("querydays")):
        ctx["days"] = True
    if parse_bool(params.get("querypayers")):
        ctx["payers"] = True
    if parse_bool(params.get("querystudyrequests")):
        ctx["study_requests"] = True
    if parse_bool(params.get("queryfiscalinfo")):
        ctx["fiscal"] = True
    if parse_bool(params.get("queryteacherprices")):
        ctx["teacher_prices"] = True
    if params.get("teacherid"):
        try:
            ctx["teacher"] = (int(params["teacherid"]) - 2) // 2
        except ValueError:
            raise ApiError("Некорректное значение параметра teacherId")
    if parse_bool(params.get("queryphoto")) is False:
        ctx["photo"] = False
    return ctx


def int_param(params, name, default):
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise ApiError(f"Некорректное значение параметра {name}")


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def mangle_row(data, root, f):
    """One row broken on purpose: `dup_key` writes `key` (default "Id") a second time at the
    end of row `row` (default 0) with `value` (default: its value + 1,000,000), so a reader
    that takes the first occurrence and jsonb (the last) disagree; `no_key` removes it."""
    doc = json.loads(data)
    rows = doc.get(root) if isinstance(doc, dict) else None
    i, key = int(f.get("row", 0)), f.get("key", "Id")
    if not isinstance(rows, list) or i >= len(rows) or not isinstance(rows[i], dict):
        return data
    texts = [dumps(x).decode("utf-8") for x in rows]
    if f["kind"] == "no_key":
        rows[i].pop(key, None)
        texts[i] = dumps(rows[i]).decode("utf-8")
    else:
        old = rows[i].get(key)
        val = f.get("value", old + 1000000 if isinstance(old, int) else "x")
        texts[i] = texts[i][:-1] + "," + json.dumps(key, ensure_ascii=False) + ":" + \
            json.dumps(val, ensure_ascii=False) + "}"
    doc[root] = "__CRMSYNC_ROWS__"
    return dumps(doc).replace(b'"__CRMSYNC_ROWS__"', ("[" + ",".join(texts) + "]").encode("utf-8"), 1)


def frags_body(app, table, frags):
    """A page's body from rows already rendered as JSON text, shaped as the rendered path shapes it."""
    app.stat("rows_served", len(frags))
    parts = []
    if frags or not app.empty_omit:
        parts.append(f'"{table.root}":[' + ",".join(frags) + "]")
    if table.now:
        parts.append(f'"Now":"{now_str()}"')
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def api_answer(app, table, params):
    """-> (status, obj or already-encoded bytes). Raises ApiError for param errors."""
    d = app.data
    for pname, msg in table.required:
        if not params.get(pname):
            raise ApiError(msg)
    if table.method == "GetAnnouncements":
        bad = [t for t in params["targets"].split(",")
               if t.strip().lower() not in ("students", "employees", "companies")]
        if bad:
            raise ApiError(f"Некорректное значение поля targets: {bad[0]}")
    ctx = make_ctx(params)
    st = table.st
    if table.method == "GetIncomesAndOutgoes":
        try:
            cid = int(params["clientid"])
        except ValueError:
            raise ApiError("Некорректное значение параметра clientId")
        tok = table.find(cid, st)
        if tok is None:
            return 200, {"Study": {}, "OtherPayments": {}}
        return 200, table.render(cid, tok, ctx, st)
    if table.method == "GetStudentPersonalOfficeSettings":
        try:
            cid = int(params["clientid"])
        except ValueError:
            raise ApiError("Некорректное значение параметра clientId")
        tok = table.find(cid, st)
        rows = [] if tok is None else [table.render(cid, tok, ctx, st)]
    elif table.paged:
        take = int_param(params, "take", app.default_take)
        skip = max(0, int_param(params, "skip", 0))
        take = max(0, min(take, app.max_take))
        if table.gen_json is not None and not table.parse_filters(params)[0]:
            return 200, frags_body(app, table, table.select_frags(params, ctx, skip, take, st))
        if table.pure:
            return 200, frags_body(app, table, table.select(params, ctx, skip, take, st, text=True))
        rows = table.select(params, ctx, skip, take, st)
    else:
        rows = table.select(params, ctx, 0, 1 << 62, st)
        if table.method == "GetLeadStatuses":
            order = {sid: k for k, (sid, _, _) in enumerate(LEAD_STATUSES)}
            rows.sort(key=lambda r: order.get(r["Id"], 1000 + r["Id"]))
    app.stat("rows_served", len(rows))
    out = {}
    if rows or not app.empty_omit:
        out[table.root] = rows
    if table.now:
        out["Now"] = now_str()
    return 200, out


def count_rows(app, table, params):
    params = dict(params)
    rows_only = params.pop("children", None) == "0"
    if rows_only and not table.parse_filters(params)[0]:
        return {"method": table.method, "rows": table.live_count(table.st)}
    ctx = make_ctx(params)
    key = (table.method, tuple(sorted(params.items())), app.data.version)
    hit = app.count_cache.get(key)
    if hit is not None:
        return hit
    st = table.st
    preds, cands = table.parse_filters(params)
    children = collections.Counter()
    rows = 0
    seq = table.candidates_iter(cands, st) if cands is not None else table.iter_from(0, st)
    if table.flat and not preds:
        # no nested collections in generated rows: only overlays can add some
        rows = table.live_count(st)
        seq = [(k, table.find(k, st)) for k in st.edits]
    for k, tok in seq:
        row = table.render(k, tok, ctx, st)
        if preds and not all(p(row) for p in preds):
            continue
        if not (table.flat and not preds):
            rows += 1
        if isinstance(row, dict):
            for f, v in row.items():
                if isinstance(v, list):
                    children[f] += len(v)
                elif isinstance(v, dict):
                    children[f] += 1
                    for f2, v2 in v.items():
                        if isinstance(v2, list):
                            children[f"{f}.{f2}"] += len(v2)
    res = {"method": table.method, "rows": rows, "children": dict(sorted(children.items()))}
    if len(app.count_cache) > 256:
        app.count_cache.clear()
    app.count_cache[key] = res
    return res


def mutate(app, ops):
    d = app.data
    results = []
    with app.mlock:
        for n, op in enumerate(ops):
            try:
                results.append(mutate_one(d, op))
            except ControlError as e:
                raise ControlError(f"op {n}: {e}")
            except (KeyError, TypeError, ValueError) as e:
                raise ControlError(f"op {n}: bad op ({e!r})")
            finally:
                d.version += 1
    return results


def clean_set(table, s):
    if not isinstance(s, dict):
        raise ControlError("'set' must be an object")
    for k in table.key_fields:
        if k and k in s:
            raise ControlError(f"cannot set key field {k}")
    return {k: (REMOVE if v is None or v == "" or v == [] else v) for k, v in s.items()}


def mutate_one(d, op):
    t = d.tables.get(str(op.get("method", "")).lower())
    if t is None:
        raise ControlError(f"unknown method {op.get('method')!r}")
    kind = op.get("op")
    st = t.st.copy()
    if kind == "edit":
        if t.strings:
            raise ControlError("rows of this method are bare strings; delete/add instead")
        key = t.norm_key(op["key"])
        tok = t.find(key, st)
        if tok is None:
            raise ControlError(f"no such key {t.key_json(key)!r}")
        ov = dict(st.edits.get(key, {}))
        ov.update(clean_set(t, op.get("set", {})))
        cur = t.render(key, tok, {}, t.st)
        if isinstance(cur, dict) and "Updated" in cur and "Updated" not in op.get("set", {}):
            ov["Updated"] = d.bump(cur.get("Updated"))
        st.edits[key] = ov
        t.st = st
        return {"op": "edit", "key": t.key_json(key)}
    if kind == "delete":
        keys = op["keys"] if "keys" in op else [op["key"]]
        done = []
        for raw in keys:
            key = t.norm_key(raw)
            tok = t.find(key, st)
            if tok is None:
                raise ControlError(f"no such key {t.key_json(key)!r}")
            if key in st.akeys:
                del st.akeys[key]
                st.added = [e for e in st.added if e[0] != key]
            else:
                bisect.insort(st.dsorted, tok)
                st.dset.add(tok)
            st.edits.pop(key, None)
            done.append(t.key_json(key))
        t.st = st
        return {"op": "delete", "keys": done}
    if kind == "add":
        count = int(op.get("count", 1))
        spec = op.get("set", {}) or {}
        keys = []
        for _ in range(count):
            t.st = st    # new_token may look at own keys
            key, tok = t.new_token(t.added_seq, spec)
            t.added_seq += 1
            if t.find(key, st) is not None:
                raise ControlError(f"key {t.key_json(key)!r} exists")
            t.insert_added(st, key, tok)
            if not t.strings:
                ov = {}
                stamp = d.bump(None)
                for f in t.stamps:
                    ov[f] = stamp
                ov.update(clean_set(t, {k: v for k, v in spec.items() if k not in t.key_fields}))
                if ov:
                    st.edits[key] = ov
            keys.append(t.key_json(key))
        t.st = st
        return {"op": "add", "keys": keys}
    raise ControlError(f"unknown op {kind!r}")


# --------------------------------------------------------------------------------------------
# HTTP

APP = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-hollihop/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if APP.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")

    # --- io
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    extra_headers = ()

    def send(self, status, body, ctype="application/json; charset=utf-8"):
        self.send_response(status)
        for k, v in self.extra_headers:
            self.send_header(k, v)
        self.extra_headers = ()
        if self.t_start:
            self.send_header("X-Fake-Serve-Ms", f"{(time.perf_counter() - self.t_start) * 1000:.2f}")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private")
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []
        APP.stat("bytes_sent", len(body))

    def send_json(self, status, obj):
        self.send(status, dumps(obj))

    t_start = 0.0

    def dispatch(self, verb):
        self.t_start = time.perf_counter()
        try:
            url = urllib.parse.urlsplit(self.path)
            body = self.read_body()
            path = url.path
            low = path.lower()
            if low.startswith("/api/v2/"):
                APP.flight(1)
                try:
                    self.api(path[8:].strip("/"), url.query, body)
                finally:
                    APP.flight(-1)
            elif path.startswith("/_fake/"):
                APP.stat("control_requests")
                self.control(verb, path[7:].strip("/"), url.query, body)
            else:
                self.send_json(404, {"Error": "Not found"})
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as e:  # never kill the connection thread silently
            if APP.verbose:
                import traceback
                traceback.print_exc()
            try:
                self.send_json(500, {"Error": f"fake server error: {e!r}"})
            except OSError:
                self.close_connection = True

    # --- params
    def params(self, query, body):
        p = {}
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
            p.setdefault(k.lower(), v)
        if body:
            ctype = (self.headers.get("Content-Type") or "").lower()
            if "json" in ctype or body[:1] in (b"{",):
                try:
                    obj = json.loads(body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    raise ApiError("Некорректный JSON в теле запроса", 400)
                if isinstance(obj, dict):
                    for k, v in obj.items():
                        if isinstance(v, bool):
                            v = "true" if v else "false"
                        elif isinstance(v, list):
                            v = ",".join(str(x) for x in v)
                        elif v is None:
                            continue
                        p.setdefault(k.lower(), str(v))
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise ApiError("Некорректная кодировка тела запроса", 400)
                for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
                    p.setdefault(k.lower(), v)
        return p

    # --- API
    def api(self, method_raw, query, body):
        app = APP
        table = app.data.tables.get(method_raw.lower())
        if table is None:
            app.stat("unknown_method")
            self.send_json(404, {"Error": f"Метод {method_raw} не найден"})
            return
        method = table.method
        app.stat("requests_total")
        app.stat("requests", sub=method)
        if not app.rate_ok():
            self.rate_limited(method)
            return
        try:
            params = self.params(query, body)
        except ApiError as e:
            app.stat("param_errors")
            self.send_json(e.status or app.error_status, {"Error": e.msg})
            return
        if params.get("authkey") != app.authkey:
            app.stat("bad_auth")
            self.send_json(app.error_status, {"Error": "Неверный ключ авторизации (authkey)"})
            return
        fault = app.take_fault(method)
        if fault is not None:
            kind = fault["kind"]
            app.stat("faults_served")
            app.stat("faults_by_kind", sub=kind)
            if kind == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if kind == "http500":
                self.send(fault.get("status", 500),
                          b"<html><body><h1>500 - Internal server error.</h1></body></html>",
                          "text/html; charset=utf-8")
                return
            if kind == "error_body":
                self.send_json(fault.get("status", 200),
                               {"Error": fault.get("message", "Внутренняя ошибка сервера")})
                return
            if kind == "ratelimit":
                self.rate_limited(method, fault.get("retry_after"))
                return
            if kind == "ban":
                # ASSUMPTION (Hollihop's ban page is unpublished): the front proxy's 403 page.
                self.send(fault.get("status", 403),
                          b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
                          b"<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n"
                          b"</body>\r\n</html>\r\n", "text/html")
                return
            if kind == "slow":
                time.sleep(fault.get("delay_ms", 3000) / 1000.0)
            if kind == "body":
                # Any answer, e.g. a 200 that is neither the list nor {"Error": ...}.
                self.send(int(fault.get("status", 200)), str(fault.get("body", "")).encode("utf-8"))
                return
            if kind == "loop" and table.paged:
                # A server that wraps around: skip past `period` pages starts again at 0.
                take = max(1, min(int_param(params, "take", app.default_take), app.max_take))
                span = int(fault["period"]) * take
                params["skip"] = str(max(0, int_param(params, "skip", 0)) % span)
        if method == "GetEmployees" and app.emp_quirk and \
                parse_bool(params.get("queryphoto")) is not False:
            app.stat("http500_employees")
            self.send(500, b"<html><body><h1>500 - Internal server error.</h1>"
                           b"<p>Could not find a part of the path.</p></body></html>",
                      "text/html; charset=utf-8")
            return
        try:
            status, obj = api_answer(app, table, params)
        except ApiError as e:
            app.stat("param_errors")
            self.send_json(e.status or app.error_status, {"Error": e.msg})
            return
        data = obj if isinstance(obj, bytes) else dumps(obj)
        cb = params.get("callback")
        if cb and cb.replace("_", "").replace(".", "").isalnum():
            self.send(status, cb.encode() + b"(" + data + b");", "application/javascript; charset=utf-8")
            return
        if fault is not None and fault["kind"] == "malformed":
            cut = max(1, len(data) // 2)
            data = data[:cut]
        if fault is not None and fault["kind"] in ("dup_key", "no_key"):
            data = mangle_row(data, table.root, fault)
        self.send(status, data)

    def rate_limited(self, method, retry_after=None):
        APP.stat("rate_limited")
        APP.stat("rate_limited_by_method", sub=method)
        if APP.rate_status == 200:
            # The shape a client documents from Hollihop support: a JSON error, HTTP 200.
            self.send_json(200, {"Error": "Requests limit is exceeded"})
            return
        # ASSUMPTION: any other status comes from the front proxy, as amoCRM's 429/403 do:
        # an HTML page, not JSON, with Retry-After (seconds until the window has room).
        wait = APP.retry_after() if retry_after is None else retry_after
        st = APP.rate_status
        self.extra_headers = [("Retry-After", str(wait))]
        self.send(st, (f"<html>\r\n<head><title>{st} Too Many Requests</title></head>\r\n<body>\r\n"
                       f"<center><h1>{st} Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
                       "</body>\r\n</html>\r\n").encode(), "text/html")

    # --- control
    def control(self, verb, what, query, body):
        app = APP
        q = {k: v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)}
        try:
            obj = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            self.send_json(400, {"error": "body must be JSON"})
            return
        try:
            if what == "health":
                self.send_json(200, {"ok": True})
            elif what == "stats" and verb == "GET":
                with app.lock:
                    s = {k: (dict(v) if isinstance(v, collections.Counter) else v)
                         for k, v in app.stats.items()}
                s["faults_pending"] = sum(max(0, f["count"] - f["served"]) if f["count"] >= 0 else 1
                                          for f in app.faults)
                self.send_json(200, s)
            elif what == "reset_stats" and verb == "POST":
                app.reset_stats()
                with app.lock:
                    app.hits.clear()
                self.send_json(200, {"ok": True})
            elif what == "faults":
                if verb == "DELETE":
                    with app.lock:
                        app.faults = []
                    self.send_json(200, {"ok": True, "active": 0})
                elif verb == "POST":
                    new = []
                    for f in obj.get("faults", []):
                        kind = f.get("kind")
                        if kind not in FAULT_KINDS:
                            raise ControlError(f"unknown fault kind {kind!r}")
                        nf = {"method": str(f.get("method", "*")).lower(), "kind": kind,
                              "count": int(f.get("count", 1)), "after": int(f.get("after", 0)),
                              "seen": 0, "served": 0}
                        if kind == "loop" and int(f.get("period", 0)) < 1:
                            raise ControlError("a loop fault needs period >= 1 (pages)")
                        for k in ("delay_ms", "status", "message", "retry_after", "body", "row",
                                  "key", "value", "period"):
                            if k in f:
                                nf[k] = f[k]
                        new.append(nf)
                    with app.lock:
                        if obj.get("replace"):
                            app.faults = []
                        app.faults.extend(new)
                        n = len(app.faults)
                    self.send_json(200, {"ok": True, "active": n})
                else:
                    with app.lock:
                        self.send_json(200, {"faults": [dict(f) for f in app.faults]})
            elif what == "mutate" and verb == "POST":
                res = mutate(app, obj.get("ops", []))
                app.count_cache.clear()
                self.send_json(200, {"ok": True, "results": res})
            elif what in ("record", "count", "keys"):
                t = app.data.tables.get(q.get("method", "").lower())
                if t is None:
                    raise ControlError(f"unknown method {q.get('method')!r}")
                params = {k.lower(): v for k, v in q.items() if k not in ("method", "key")}
                if what == "keys":
                    self.send_json(200, {"method": t.method, "key_fields": list(t.key_fields),
                                         "keys": [t.key_json(k) for k in t.keys()]})
                elif what == "count":
                    self.send_json(200, count_rows(app, t, params))
                else:
                    if "key" not in q:
                        raise ControlError("key= required")
                    raw = q["key"]
                    try:
                        raw = json.loads(raw)
                    except ValueError:
                        pass
                    key = t.norm_key(raw)
                    st = t.st
                    tok = t.find(key, st)
                    if tok is None:
                        self.send_json(404, {"error": "not found", "key": t.key_json(key)})
                    else:
                        self.send_json(200, t.render(key, tok, make_ctx(params), st))
            elif what == "config":
                if verb == "POST":
                    for k, v in obj.items():
                        if k == "rate_limit":
                            app.rate_limit = int(v)
                        elif k == "rate_window":
                            app.rate_window = float(v)
                        elif k == "rate_limit_status":
                            app.rate_status = int(v)
                        elif k == "error_status":
                            app.error_status = int(v)
                        elif k == "employees_photo_500":
                            app.emp_quirk = bool(v)
                        elif k == "max_take":
                            app.max_take = int(v)
                        elif k == "default_take":
                            app.default_take = int(v)
                        elif k == "authkey":
                            app.authkey = str(v)
                        elif k == "verbose":
                            app.verbose = bool(v)
                        else:
                            raise ControlError(f"unknown config key {k!r}")
                    with app.lock:
                        app.hits.clear()
                self.send_json(200, {"rate_limit": app.rate_limit, "rate_window": app.rate_window,
                                     "rate_limit_status": app.rate_status,
                                     "error_status": app.error_status,
                                     "employees_photo_500": app.emp_quirk,
                                     "max_take": app.max_take, "default_take": app.default_take,
                                     "scale": app.counts, "seed": app.args.seed,
                                     "anchor_date": app.args.anchor_date})
            elif what == "reset" and verb == "POST":
                with app.mlock:
                    app.data = Data(app.args.seed, app.counts, app.anchor, app.args.alt_shapes)
                    app.count_cache.clear()
                    ROW_CACHE[0] = 0    # the old tables' kept rows go with them
                self.send_json(200, {"ok": True})
            elif what == "methods":
                out = []
                for m in METHODS:
                    t = app.data.tables[m.lower()]
                    out.append({"method": t.method, "root": t.root, "key_fields": list(t.key_fields),
                                "paged": t.paged, "required": [p for p, _ in t.required],
                                "now": t.now})
                self.send_json(200, {"methods": out})
            else:
                self.send_json(404, {"error": f"unknown control endpoint {verb} /_fake/{what}"})
        except ControlError as e:
            self.send_json(400, {"error": str(e)})
        except ApiError as e:
            self.send_json(400, {"error": e.msg})


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # clients that reset or time out are normal in fault tests: no traceback spam
        if APP is not None and APP.verbose:
            super().handle_error(request, client_address)


def build_parser():
    p = argparse.ArgumentParser(
        description="Fake Hollihop API V2 server for crmsync tests (stdlib only). Prints "
                    "'listening port=<N>' as the first stdout line.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    p.add_argument("--authkey", default="fAkE/hollihop+Key==",
                   help="the only accepted authkey (send it urlencoded)")
    p.add_argument("--seed", type=int, default=1, help="data seed")
    p.add_argument("--scale", choices=sorted(SCALES), default="tiny",
                   help="preset row counts (tiny ~20 per entity; demo a few thousand; bench "
                        "100k students / 500k payments / 20k ed units)")
    for k in COUNT_FIELDS:
        p.add_argument("--" + k.replace("_", "-"), type=int, default=argparse.SUPPRESS, dest=k,
                       help=f"{k.replace('_', ' ')} (default: from --scale)")
    p.add_argument("--anchor-date", default="2025-06-01",
                   help="'today' of the generated data (data span the 4 years before it)")
    p.add_argument("--rate-limit", type=int, default=600,
                   help="requests per sliding window (0 = no limit)")
    p.add_argument("--rate-window", type=float, default=30.0, help="window length in seconds")
    p.add_argument("--rate-limit-status", type=int, default=429,
                   help="HTTP status of the {\"Error\":\"Requests limit is exceeded\"} answer")
    p.add_argument("--error-status", type=int, default=200,
                   help="HTTP status of bad-authkey and bad/missing-parameter {\"Error\":...} answers")
    p.add_argument("--max-take", type=int, default=10000, help="take is clamped to this")
    p.add_argument("--default-take", type=int, default=1000, help="take when none is sent")
    p.add_argument("--employees-photo-500", action=argparse.BooleanOptionalAction, default=True,
                   help="GetEmployees answers HTTP 500 unless queryPhoto=false (real quirk)")
    p.add_argument("--alt-shapes", action="store_true",
                   help="use the alternative UNSURE shapes: ClientStatuses/EmployeeStatuses root "
                        "keys, LearningTypes as [{Name}], empty lists omitted ({})")
    p.add_argument("--no-warmup", action="store_true",
                   help="do not precompute group indexes in the background after start")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    return p


def warmup(app):
    """Background: group indexes, then the per-student name cache used by hot pages."""
    try:
        d = app.data
        for m in ("getedunitstudents", "getedunitleads", "gethistorymodifyleadstatus",
                  "getclientfiles"):
            d.tables[m].prefix
        for s in range(min(d.NS, 300000)):
            if app.data is not d:
                return
            d.stu_pay_info(s)
            if s % 2000 == 0:
                time.sleep(0.001)   # let request threads in
    except Exception:
        pass


def main(argv=None):
    global APP
    args = build_parser().parse_args(argv)
    APP = App(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    sys.stdout.write(f"listening port={srv.server_address[1]}\n")
    sys.stdout.flush()

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not args.no_warmup:
        threading.Thread(target=warmup, args=(APP,), daemon=True).start()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
