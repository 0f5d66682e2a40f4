"""What amoCRM really sends, as shapes: every file here has the keys, key order, types,
nesting and absent-vs-null of one piece of captured traffic (or of a vendor documentation
example), with values of our own. test_fake_shapes.py holds the fake amoCRM to them.

RESPONSES: (file, endpoint family, how the file holds it, evidence)
  endpoint family: the path with ids and entity types generalised ("{entity}/custom_fields");
  how: "page" = a whole HAL list answer, "rows" = rows of its _embedded list only,
  "row" = one row as the list returns it (a by-id answer), "error" = an error body.
HOOKS: every hooks/*.form is one webhook body (application/x-www-form-urlencoded, PHP bracket
  keys, re-encoded as amoCRM encodes them), its source in HOOK_SOURCES.
ERRORS_NOT_JSON: statuses whose real bodies are not JSON (the file holds one such body).
"""

CAPTURE, DOC = "capture", "vendor documentation example"

RESPONSES = [
    ("leads_page_2022.json", "leads", "page",
     CAPTURE + " 2022: GET /api/v4/leads?page=1&limit=50, a real account (a public server's "
     "stored response); last page: _page and _links.self only"),
    ("leads_page_2024.json", "leads", "page",
     CAPTURE + " 2024: GET /api/v4/leads?page=1&limit=20 logged by a public Node client"),
    ("contacts_rows_2023.json", "contacts", "rows",
     CAPTURE + " 2023: the _embedded.contacts of GET /api/v4/contacts?query=..."),
    ("leads_custom_fields_page_excerpt.json", "{entity}/custom_fields", "page",
     CAPTURE + " 2023 (PR shevernitskiy/amo#11): GET /api/v4/leads/custom_fields, 103 fields in "
     "3 pages; the stored copy is cut after the first field's chained_lists, so keys after it "
     "are unknown, not absent"),
    ("events_page_doc.json", "events", "page", DOC + " (events list)"),
    ("tasks_page_doc.json", "tasks", "page", DOC + " (tasks list)"),
    ("lead_doc.json", "leads", "row", DOC + " (one lead; a date field's value as a string)"),
    ("error_401.json", "401", "error",
     CAPTURE + " 2021 (amocrm/amocrm-api-php#333): application/problem+json"),
]

ERRORS_NOT_JSON = {
    403: ("error_403_ban.html", CAPTURE + " 2022 (amocrm/amocrm-api-php#434, #563): a blocked "
          "account's 403 is nginx's HTML page, also from the token endpoint"),
    429: (None, "amocrm/amocrm-api-php#517 (2023): 429 bodies are not JSON; no body was published"),
}

_D17 = "decoded $_POST of dotzero/amocrm-php tests/Webhooks/Fixtures, 2017"
HOOK_SOURCES = {
    "hook_2016_add_company_as_contacts.form": "raw body 2016 (Zapier app test): a company as contacts[add] with [type]=company",
    "hook_2016_add_company_with_group.form": "raw body 2016: a company with group_id",
    "hook_2016_add_contact.form": "raw body 2016",
    "hook_2016_add_lead.form": "raw body 2016",
    "hook_2016_responsible_lead.form": "raw body 2016",
    "hook_2016_restore_contact.form": "raw body 2016",
    "hook_2016_status_lead.form": "raw body 2016",
    "hook_2016_update_lead.form": "raw body 2016",
    "hook_2017_add_company.form": _D17,
    "hook_2017_add_contact.form": _D17,
    "hook_2017_add_lead.form": _D17,
    "hook_2017_delete_company.form": _D17 + ": only [id] and [type]",
    "hook_2017_delete_contact.form": _D17 + ": only [id] and [type]",
    "hook_2017_delete_lead.form": _D17 + ": only [id]",
    "hook_2017_note_company.form": _D17 + ": no [note][id], single-quoted values",
    "hook_2017_note_contact.form": _D17,
    "hook_2017_note_lead.form": _D17,
    "hook_2017_status_lead.form": _D17,
    "hook_2017_update_company.form": _D17,
    "hook_2017_update_contact.form": _D17,
    "hook_2017_update_lead.form": _D17,
    "hook_2018_lead_status_custom_fields.form": "unescaped body 2018 (a C# test): status with custom fields and tags",
    "hook_2018_contact_update.form": "raw body 2018 (the same test): a contact with custom fields and linked leads",
    "hook_2020_status_minimal.form": "decoded 2020 (a Python handler): a status move with old_status_id only",
    "hook_2022_lead_add.form": "parse_qs 2022 (a Flask app): account[id] and account[_links][self]",
    "hook_2023_message_add_telegram.form": "decoded 2023: message[add] from Telegram",
    "hook_2023_unsorted_add_chats.form": "decoded 2023: unsorted[add], category chats",
    "hook_2024_message_add_onlinechat.form": "decoded 2024 (a C# controller): message[add] from an online chat",
    "hook_kommo_message_picture_waba.form": "decoded, Kommo >= 2024 (a TS fixture): message[add] with a picture attachment",
}
