"""Reference data of the fake amoCRM account: account, users, roles, pipelines, custom fields...

These lists are small, so they are built once at start (build_ref) and served from memory.
The bulk entities (leads, contacts...) are in amo_gen.py and refer to the ids made here.
Shapes follow amoCRM's public API v4 documentation; see README.md for what is UNSURE.
"""

from amo_util import (CITIES, COURSES, DAY, R, TAG_WORDS, person, salt_of, email, uuid_of)

SCALES = {
    #          users leads contacts companies customers tasks notes events unsorted talks
    #          elements(per catalog) transactions pipelines extra_fields
    "tiny": dict(users=5, leads=30, contacts=25, companies=8, customers=6, tasks=20, notes=40,
                 events=60, unsorted=4, talks=5, elements=12, transactions=8, pipelines=2,
                 extra_fields=0),
    "demo": dict(users=12, leads=2000, contacts=1500, companies=300, customers=200, tasks=1000,
                 notes=3000, events=5000, unsorted=40, talks=100, elements=200, transactions=300,
                 pipelines=3, extra_fields=10),
    "bench": dict(users=40, leads=50000, contacts=50000, companies=10000, customers=5000,
                  tasks=50000, notes=100000, events=100000, unsorted=500, talks=2000,
                  elements=2000, transactions=5000, pipelines=5, extra_fields=60),
}

ENTITY_TYPES = ("leads", "contacts", "companies", "customers")
CF_ENTITIES = ENTITY_TYPES + ("customers/segments",)
WON, LOST = 142, 143

PIPELINE_NAMES = ["Продажи курсов", "Корпоративные клиенты", "Летний лагерь", "Онлайн-школа",
                  "Партнёры", "Повторные продажи", "Мероприятия"]
STATUS_NAMES = ["Первичный контакт", "Консультация", "Пробный урок", "Принимают решение",
                "Договор отправлен"]
COLORS = ["#99ccff", "#ffff99", "#ffcc66", "#ff9999", "#ccff66", "#98cbff", "#deff81",
          "#d6eaff", "#c1e0ff", "#ebffb1", "#fffeb2"]
LOSS_REASONS = ["Дорого", "Выбрали конкурента", "Неудобное расписание", "Не дозвонились",
                "Передумали", "Переезд в другой город"]
TASK_TYPES = [(1, "Связаться", "FOLLOW_UP", None, None), (2, "Встреча", "MEETING", None, None),
              (3, "Пробный урок", None, "#ffcc00", 5), (4, "Отправить договор", None, "#33ccff", 2)]
EVENT_TYPES = [
    ("lead_added", "Новая сделка"), ("lead_deleted", "Сделка удалена"),
    ("lead_restored", "Сделка восстановлена"), ("lead_status_changed", "Изменение этапа продажи"),
    ("lead_linked", "Прикрепление сделки"), ("lead_unlinked", "Открепление сделки"),
    ("contact_added", "Новый контакт"), ("contact_deleted", "Контакт удален"),
    ("contact_restored", "Контакт восстановлен"), ("company_added", "Новая компания"),
    ("company_deleted", "Компания удалена"), ("company_restored", "Компания восстановлена"),
    ("customer_added", "Новый покупатель"), ("customer_deleted", "Покупатель удален"),
    ("customer_status_changed", "Изменение этапа покупателя"),
    ("task_added", "Новая задача"), ("task_completed", "Завершение задачи"),
    ("task_deleted", "Задача удалена"), ("task_deadline_changed", "Изменение срока задачи"),
    ("task_text_changed", "Изменение текста задачи"),
    ("incoming_call", "Входящий звонок"), ("outgoing_call", "Исходящий звонок"),
    ("incoming_chat_message", "Входящее сообщение"),
    ("outgoing_chat_message", "Исходящее сообщение"),
    ("entity_tag_added", "Теги добавлены"), ("entity_tag_deleted", "Теги убраны"),
    ("entity_responsible_changed", "Ответственный изменен"),
    ("sale_field_changed", "Изменение поля «Бюджет»"),
    ("name_field_changed", "Изменение поля «Название»"),
    ("custom_field_value_changed", "Изменение поля"),
    ("common_note_added", "Новое примечание"), ("common_note_deleted", "Примечание удалено"),
    ("talk_created", "Новая беседа"), ("talk_closed", "Беседа закрыта"),
]
PHONE_ENUMS = ["WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"]
EMAIL_ENUMS = ["WORK", "PRIV", "OTHER"]


class Ref:
    """Everything small: built once, read by amo_gen and amo_api."""


def _field(ref, entity, fid, name, ftype, code=None, enums=None, sort=0, group=None,
           catalog_id=None):
    f = {"id": fid, "name": name, "type": ftype, "account_id": ref.account_id, "code": code,
         "sort": sort, "is_api_only": False, "enums": None, "group_id": group,
         "required_statuses": [], "is_deletable": code is None, "is_predefined": code is not None,
         "entity_type": entity if catalog_id is None else "catalogs",
         "tracking_callback": None, "remind": None, "triggers": [], "currency": None,
         "hidden_statuses": [], "chained_lists": None, "search_in": None}
    if catalog_id is not None:
        f["catalog_id"] = catalog_id
    if enums:
        f["enums"] = [{"id": fid * 10 + k + 1, "value": v, "sort": (k + 1) * 10}
                      for k, v in enumerate(enums)]
    if ftype == "monetary":
        f["currency"] = "RUB"
    if ftype == "date":
        f["remind"] = None
    return f


def _fields_for(ref, entity, base, extra):
    """The custom field definitions of one entity type, ids from base upwards."""
    g = "%s_%d" % (entity.replace("/", "_"), 16091668441111 + base)
    specs = {
        "leads": [
            ("Курс", "select", None, COURSES[:8]),
            ("Филиал", "select", None, CITIES[:4]),
            ("Дни занятий", "multiselect", None, ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"]),
            ("Количество занятий", "numeric", None, None),
            ("Дата пробного урока", "date", None, None),
            ("Согласие на рассылку", "checkbox", None, None),
            ("Комментарий менеджера", "textarea", None, None),
            ("Ссылка на договор", "url", None, None),
            ("utm_source", "tracking_data", "UTM_SOURCE", None),
            ("Звонок назначен на", "date_time", None, None),
            ("Предоплата", "monetary", None, None),
            ("Формат", "radiobutton", None, ["Очно", "Онлайн", "Смешанный"]),
        ],
        "contacts": [
            ("Телефон", "multitext", "PHONE", PHONE_ENUMS),
            ("Email", "multitext", "EMAIL", EMAIL_ENUMS),
            ("Должность", "text", "POSITION", None),
            ("День рождения", "birthday", None, None),
            ("Город", "select", None, CITIES),
            ("Возраст ученика", "numeric", None, None),
            ("Адрес", "streetaddress", None, None),
        ],
        "companies": [
            ("Телефон", "multitext", "PHONE", PHONE_ENUMS),
            ("Email", "multitext", "EMAIL", EMAIL_ENUMS),
            ("Web", "url", "WEB", None),
            ("Адрес", "textarea", "ADDRESS", None),
            ("ИНН", "text", None, None),
        ],
        "customers": [
            ("Абонемент", "select", None, ["4 занятия", "8 занятий", "12 занятий", "Безлимит"]),
            ("Остаток занятий", "numeric", None, None),
            ("Дата продления", "date", None, None),
        ],
        "customers/segments": [
            ("Описание сегмента", "text", None, None),
        ],
    }[entity]
    out = []
    for k, (name, ftype, code, enums) in enumerate(specs):
        out.append(_field(ref, entity, base + k, name, ftype, code, enums, sort=(k + 1) * 10,
                          group=None if code else (g if k % 3 == 2 else None)))
    for k in range(extra):
        out.append(_field(ref, entity, base + 100 + k, "Доп. поле %d" % (k + 1), "text",
                          sort=1000 + k, group=g))
    return out, g


def build_ref(cfg):
    """cfg: seed, now, counts (dict), subdomain, account_id, host base url."""
    ref = Ref()
    seed = cfg.seed
    ref.seed = seed
    ref.now = cfg.now
    ref.counts = cfg.counts
    ref.account_id = cfg.account_id
    ref.subdomain = cfg.subdomain
    r = R(salt_of(seed, "ref"), 0)
    now = cfg.now
    born = now - 3 * 365 * DAY

    # account
    ref.user_groups = [{"id": 0, "name": "Отдел продаж", "uuid": None},
                       {"id": 351, "name": "Методисты", "uuid": uuid_of(seed, 351)},
                       {"id": 352, "name": "Филиал Казань", "uuid": uuid_of(seed, 352)}]
    ref.task_types = [{"id": i, "name": n, "color": c, "icon_id": ic, "code": code}
                      for i, n, code, c, ic in TASK_TYPES]
    ref.account = {
        "id": ref.account_id, "name": "Учебный центр «Лингва» (тест)",
        "subdomain": ref.subdomain, "created_at": born, "created_by": 0,
        "updated_at": now - 30 * DAY, "updated_by": 0, "current_user_id": 0,
        "country": "RU", "currency": "RUB", "currency_symbol": "₽",
        "customers_mode": "segments", "is_unsorted_on": True, "mobile_feature_version": 0,
        "is_loss_reason_enabled": True, "is_helpbot_enabled": False,
        "is_technical_account": True, "contact_name_display_order": 1,
        "amojo_id": uuid_of(seed, 1), "uuid": uuid_of(seed, 2), "version": 11,
    }
    ref.datetime_settings = {
        "date_pattern": "d.m.Y H:i", "short_date_pattern": "d.m.Y", "short_time_pattern": "H:i",
        "date_format": "d.m.Y", "time_format": "H:i", "timezone": "Europe/Moscow",
        "timezone_offset": "+03:00"}

    # roles and users
    ref.roles = []
    for k, name in enumerate(["Руководитель", "Менеджер", "Методист"]):
        ref.roles.append({"id": 101 + k, "name": name, "rights": _rights(k)})
    ref.users = []
    nu = max(1, cfg.counts["users"])
    for k in range(nu):
        ur = R(salt_of(seed, "user"), k)
        first, last, full = person(ur)
        uid = 7000001 + k
        role = ref.roles[0 if k == 0 else 1 + (k % 2)]
        group = ref.user_groups[k % len(ref.user_groups)]
        rights = _rights(0 if k == 0 else 1)
        rights.update({"is_admin": k == 0, "is_free": False, "is_active": k % 11 != 10,
                       "group_id": group["id"] or None, "role_id": role["id"] if k else None})
        ref.users.append({"id": uid, "name": full, "email": email(first, last, k),
                          "lang": "ru", "rights": rights,
                          "_embedded": {"roles": [{"id": role["id"], "name": role["name"]}],
                                        "groups": [{"id": group["id"], "name": group["name"]}]},
                          "uuid": uuid_of(seed, 1000 + k), "amojo_id": uuid_of(seed, 2000 + k),
                          "user_rank": "newbie", "phone_number": None})
    ref.user_ids = [u["id"] for u in ref.users]
    ref.account["current_user_id"] = ref.user_ids[0]
    ref.account["created_by"] = ref.user_ids[0]

    # pipelines and statuses
    ref.pipelines = []
    ref.status_pairs = []           # (pipeline_id, status_id) of open statuses incl. unsorted
    for p in range(max(1, cfg.counts["pipelines"])):
        pid = 1000001 + p
        statuses = [_status(ref, pid, 40000000 + p * 100, "Неразобранное", 10, 1, False, 0)]
        for k, name in enumerate(STATUS_NAMES[: 3 + (p % 3)]):
            statuses.append(_status(ref, pid, 40000000 + p * 100 + k + 1, name, 20 + k * 10,
                                    0, True, k + 1))
        statuses.append(_status(ref, pid, WON, "Успешно реализовано", 10000, 0, False, 6))
        statuses.append(_status(ref, pid, LOST, "Закрыто и не реализовано", 11000, 0, False, 3))
        ref.pipelines.append({"id": pid, "name": PIPELINE_NAMES[p % len(PIPELINE_NAMES)],
                              "sort": (p + 1) * 10, "is_main": p == 0, "is_unsorted_on": True,
                              "is_archive": p == 4, "account_id": ref.account_id,
                              "_links": {"self": {"href": "/api/v4/leads/pipelines/%d" % pid}},
                              "_embedded": {"statuses": statuses}})
        for s in statuses:
            ref.status_pairs.append((pid, s["id"]))
    ref.pipeline_by_id = {p["id"]: p for p in ref.pipelines}

    ref.loss_reasons = [{"id": 5001 + k, "name": n, "sort": (k + 1) * 10,
                         "created_at": born + k * DAY, "updated_at": born + k * DAY,
                         "_links": {"self": {"href": "/api/v4/leads/loss_reasons/%d" % (5001 + k)}}}
                        for k, n in enumerate(LOSS_REASONS)]
    ref.sources = [{"id": 6001 + k, "name": n, "pipeline_id": ref.pipelines[k % len(ref.pipelines)]["id"],
                    "external_id": "ext-%d" % (k + 1), "default": k == 0, "origin_code": oc,
                    "services": [],
                    "_links": {"self": {"href": "/api/v4/sources/%d" % (6001 + k)}}}
                   for k, (n, oc) in enumerate([("Сайт lingva.example", None),
                                                ("Telegram-бот", "telegram"),
                                                ("WhatsApp", "waba")])]

    # catalogs (ids above 1000, as the SDK checks)
    ref.catalogs = []
    for k, (name, ctype) in enumerate([("Товары", "products"), ("Учебные материалы", "regular"),
                                       ("Счета/покупки", "invoices")]):
        cid = 1001 + k * 2
        ref.catalogs.append({"id": cid, "name": name, "created_by": ref.user_ids[0],
                             "updated_by": ref.user_ids[0], "created_at": born + k * DAY,
                             "updated_at": born + (k + 10) * DAY, "sort": (k + 1) * 10,
                             "type": ctype, "can_add_elements": ctype != "invoices",
                             "can_show_in_cards": True, "can_link_multiple": ctype != "invoices",
                             "can_be_deleted": ctype == "regular", "sdk_widget_code": None,
                             "account_id": ref.account_id,
                             "_links": {"self": {"href": "/api/v4/catalogs/%d" % cid}}})

    # custom fields, groups
    extra = cfg.counts.get("extra_fields", 0)
    ref.fields, ref.field_groups = {}, {}
    for k, ent in enumerate(CF_ENTITIES):
        fields, gid = _fields_for(ref, ent, 300000 + k * 10000, extra if ent == "leads" else extra // 6)
        ref.fields[ent] = fields
        if ent != "customers/segments":
            ref.field_groups[ent] = [
                {"id": "%s_%d" % (ent, 73891628813111 + k), "name": "Статистика",
                 "is_predefined": True, "type": "statistic", "sort": 0, "entity_type": ent,
                 "fields": []},
                {"id": gid, "name": "Обучение", "is_predefined": False, "type": None,
                 "sort": 1, "entity_type": ent,
                 "fields": [{"id": f["id"]} for f in fields if f["group_id"] == gid]}]
    for k, cat in enumerate(ref.catalogs):
        base = 400000 + k * 1000
        cid = cat["id"]
        specs = [("Артикул", "text", "SKU", None), ("Цена", "price", "PRICE", None),
                 ("Описание", "textarea", "DESCRIPTION", None),
                 ("Единица", "select", "UNIT", ["шт", "урок", "месяц"]),
                 ("Количество в наличии", "numeric", None, None)]
        ref.fields["catalog:%d" % cid] = [
            _field(ref, "catalogs", base + j, n, t, c, e, sort=(j + 1) * 10, catalog_id=cid)
            for j, (n, t, c, e) in enumerate(specs)]
    ref.field_by_id = {}
    for fl in ref.fields.values():
        for f in fl:
            ref.field_by_id[f["id"]] = f

    # tags: the same words, another id per entity type
    ref.tags = {}
    for k, ent in enumerate(ENTITY_TYPES):
        ref.tags[ent] = [{"id": 20000 + k * 1000 + j, "name": w,
                          "color": None if j % 3 else COLORS[j % len(COLORS)].upper()[1:]}
                         for j, w in enumerate(TAG_WORDS)]

    # customers: statuses (periodicity mode) and segments (segments mode)
    ref.customer_statuses = []
    for k, (name, t) in enumerate([("Ожидается покупка", 0), ("Покупка совершена", 0),
                                   ("Просрочено", 0), ("Закрыто", 4)]):
        ref.customer_statuses.append({"id": 90001 + k, "name": name, "sort": (k + 1) * 10,
                                      "is_default": k == 0, "color": COLORS[k], "type": t,
                                      "conditions": [], "account_id": ref.account_id,
                                      "_links": {"self": {"href": "/api/v4/customers/statuses/%d" % (90001 + k)}}})
    seg_field = ref.fields["customers/segments"][0]
    ref.segments = []
    for k, name in enumerate(["Постоянные", "Новички", "Корпоративные"]):
        sid = 95001 + k
        ref.segments.append({"id": sid, "name": name, "color": COLORS[k + 3][1:],
                             "created_at": born + k * DAY, "updated_at": born + (k + 5) * DAY,
                             "customers_count": 0, "account_id": ref.account_id,
                             "custom_fields_values": None if k == 2 else [
                                 {"field_id": seg_field["id"], "field_name": seg_field["name"],
                                  "field_code": None, "field_type": "text",
                                  "values": [{"value": "Сегмент: " + name}]}],
                             "available_products_price_types": [],
                             "_links": {"self": {"href": "/api/v4/customers/segments/%d" % sid}}})
    ref.event_types = [{"key": key, "type": k + 1, "lang": {"ru": ru, "en": key.replace("_", " ")}}
                       for k, (key, ru) in enumerate(EVENT_TYPES)]
    del r
    return ref


def _rights(level):
    a = "A" if level == 0 else "M" if level == 1 else "D"
    ent = {"view": "A", "edit": a, "add": "A", "delete": "A" if level == 0 else "D",
           "export": "A" if level == 0 else "D"}
    return {"leads": dict(ent), "contacts": dict(ent), "companies": dict(ent),
            "tasks": {"edit": a, "delete": "A" if level == 0 else "D"},
            "mail_access": level == 0, "catalog_access": level != 2,
            "status_rights": None if level == 0 else [],
            "is_admin": level == 0, "is_free": False, "is_active": True,
            "group_id": None, "role_id": None}


def _status(ref, pid, sid, name, sort, stype, editable, color):
    return {"id": sid, "name": name, "sort": sort, "is_editable": editable,
            "pipeline_id": pid, "color": COLORS[color % len(COLORS)], "type": stype,
            "account_id": ref.account_id,
            "_links": {"self": {"href": "/api/v4/leads/pipelines/%d/statuses/%d" % (pid, sid)}}}
