"""What real Hollihop traffic is known to contain, beyond the fixture shapes next to this file.

Two kinds of evidence that are not response payloads (docs/api/hollihop.md says which
column rests on which):

PROFILE  the key/type profile of a complete real backup of one school's account (a music
         school, 2026: 922 students, 1,736 leads, 2,709 payments, 1,090 memberships, 20
         teachers; saved unchanged from API calls): every path seen in the rows with its JSON
         types. Absent keys are simply not there: the API omits empty values.
FIELDS   field lists of two public clients that run against live accounts:
         - the strict response dataclasses of a Python client (hollihop-api-client):
           Dataclass(**row) raises on any key it does not declare, and its history shows
           fields added when the live API sent them, so a declared list is a superset of the
           keys that account's responses carried. Types are its annotations (weak: Python
           does not enforce them; "?" = not given);
         - the keys a JavaScript salary calculator reads from live responses.

Paths are relative to one row: "a.b" for objects, "arr[].x" for array elements, "arr[]"
for scalar elements. Types: int, float, num (int or float), str, bool, list, object, null,
or "?" (the key is evidenced, its type is not).
"""

PROFILE = {
    "GetLocations": {"Id": "int", "Name": "str"},
    "GetOffices": {"Address": "str", "Id": "int", "Location": "str", "Name": "str",
                   "NoClassrooms": "bool", "Phone": "str", "TimeZone": "str"},
    "GetLeadStatuses": {"Id": "int", "Name": "str", "Type": "str"},
    "GetTeachers": {
        "Birthday": "str", "Corporative": "bool", "Created": "str", "Disciplines": "list",
        "Disciplines[]": "str", "EMail": "str", "Fired": "bool", "FirstName": "str", "Id": "int",
        "LastName": "str", "Levels": "list", "Levels[]": "str", "Maturities": "list",
        "Maturities[]": "str", "MiddleName": "str", "Mobile": "str", "Offices": "list",
        "Offices[].Id": "int", "Offices[].Name": "str", "Phone": "str", "Status": "str",
        "StatusId": "int", "UseEMailBySystem": "bool", "UseMobileBySystem": "bool"},
    "GetStudents": {
        "AdSource": "str", "Address": "str", "AddressDate": "str", "Agents": "list",
        "Agents[].EMail": "str", "Agents[].FirstName": "str", "Agents[].IsCustomer": "bool",
        "Agents[].JobOrStudyPlace": "str", "Agents[].LastName": "str",
        "Agents[].MiddleName": "str", "Agents[].Mobile": "str", "Agents[].Phone": "str",
        "Agents[].Position": "str", "Agents[].UseEMailBySystem": "bool",
        "Agents[].UseMobileBySystem": "bool", "Agents[].WhoIs": "str", "Assignees": "list",
        "Assignees[].FullName": "str", "Assignees[].Id": "int", "Birthday": "str",
        "ClientId": "int", "Created": "str", "Disciplines": "list",
        "Disciplines[].Discipline": "str", "Disciplines[].Level": "str", "EMail": "str",
        "FirstName": "str", "Gender": "bool", "Id": "int", "JobOrStudyPlace": "str",
        "LastName": "str", "LearningTypes": "list", "LearningTypes[]": "str", "Maturity": "str",
        "MiddleName": "str", "Mobile": "str", "OfficesAndCompanies": "list",
        "OfficesAndCompanies[].Id": "int", "OfficesAndCompanies[].Name": "str", "Phone": "str",
        "Position": "str", "SocialNetworkPage": "str", "Status": "str", "StatusId": "int",
        "Updated": "str", "UseEMailBySystem": "bool", "UseMobileBySystem": "bool",
        "VisitDateTime": "str"},
    "GetLeads": {
        "AdSource": "str", "AddressDate": "str", "Agents": "list", "Agents[].EMail": "str",
        "Agents[].FirstName": "str", "Agents[].IsCustomer": "bool",
        "Agents[].JobOrStudyPlace": "str", "Agents[].LastName": "str",
        "Agents[].MiddleName": "str", "Agents[].Mobile": "str", "Agents[].Phone": "str",
        "Agents[].Position": "str", "Agents[].UseEMailBySystem": "bool",
        "Agents[].UseMobileBySystem": "bool", "Agents[].WhoIs": "str", "Assignees": "list",
        "Assignees[].FullName": "str", "Assignees[].Id": "int", "Birthday": "str",
        "Created": "str", "Discipline": "str", "EMail": "str", "FirstName": "str", "Id": "int",
        "LastName": "str", "LearningType": "str", "Level": "str", "Maturity": "str",
        "MiddleName": "str", "Mobile": "str", "OfficesAndCompanies": "list",
        "OfficesAndCompanies[].Id": "int", "OfficesAndCompanies[].Name": "str", "Phone": "str",
        "Status": "str", "StatusId": "int", "StudentClientId": "int", "Updated": "str",
        "UseEMailBySystem": "bool", "UseMobileBySystem": "bool"},
    "GetPayments": {
        "ClientId": "int", "ClientName": "str", "Created": "str", "Date": "str",
        "Description": "str", "Id": "int", "OfficeOrCompanyId": "int",
        "OfficeOrCompanyName": "str", "PaidDate": "str", "PaymentMethodId": "int",
        "PaymentMethodName": "str", "RequiredPaidDate": "str", "State": "str", "Type": "str",
        "Value": "str", "ValueCurrency": "str", "ValueQuantity": "float"},
    "GetEdUnitStudents": {
        "BeginDate": "str", "BeginTime": "str", "EdUnitCorporative": "bool",
        "EdUnitDiscipline": "str", "EdUnitId": "int", "EdUnitLearningType": "str",
        "EdUnitLevel": "str", "EdUnitMaturity": "str", "EdUnitName": "str",
        "EdUnitOfficeOrCompanyId": "int", "EdUnitOfficeOrCompanyName": "str",
        "EdUnitType": "str", "EndDate": "str", "EndTime": "str", "Status": "str",
        "StudentAgents": "list", "StudentAgents[].EMail": "str",
        "StudentAgents[].FirstName": "str", "StudentAgents[].IsCustomer": "bool",
        "StudentAgents[].JobOrStudyPlace": "str", "StudentAgents[].LastName": "str",
        "StudentAgents[].MiddleName": "str", "StudentAgents[].Mobile": "str",
        "StudentAgents[].Phone": "str", "StudentAgents[].Position": "str",
        "StudentAgents[].UseEMailBySystem": "bool", "StudentAgents[].UseMobileBySystem": "bool",
        "StudentAgents[].WhoIs": "str", "StudentClientId": "int", "StudentEMail": "str",
        "StudentMobile": "str", "StudentName": "str", "StudentPhone": "str",
        "StudyMinutes": "num", "StudyUnits": "str", "Weekdays": "int"},
}

_AGENT = {"FirstName": "str", "LastName": "str", "MiddleName": "str", "WhoIs": "str",
          "Mobile": "str", "UseMobileBySystem": "?", "Phone": "str", "EMail": "str",
          "UseEMailBySystem": "bool", "Skype": "str", "JobOrStudyPlace": "str",
          "Position": "str", "IsCustomer": "bool", "Birthday": "str"}


def _nest(prefix, d):
    return {f"{prefix}.{k}" if prefix else k: v for k, v in d.items()}


FIELDS = {
    "GetEdUnits": dict(
        {"Id": "int", "Type": "str", "Name": "str", "Corporative": "bool",
         "OfficeOrCompanyId": "int", "OfficeOrCompanyName": "str",
         "OfficeOrCompanyAddress": "str", "OfficeTimeZone": "str", "Discipline": "str",
         "Level": "str", "Maturity": "str", "LearningType": "str", "ExtraFields": "list",
         "StudentsCount": "int", "Vacancies": "int", "StudyUnitsInRange": "str",
         "Description": "str", "CompanyContractNumber": "str", "CompanyContractDate": "str",
         "ScheduleItems": "list", "Days": "list", "FiscalInfo": "object",
         "TeacherPrices": "list", "PriceValues": "list", "Assignee": "object",
         "Assignee.FullName": "?"},
        **_nest("ScheduleItems[]", {
            "BeginDate": "str", "BeginTime": "str", "ClassroomId": "int", "ClassroomName": "str",
            "ClassroomLink": "str", "EndDate": "str", "EndTime": "str", "Id": "int",
            "Teacher": "str", "TeacherGenders": "list", "TeacherGenders[]": "?",
            "TeacherId": "int", "TeacherIds": "list", "TeacherIds[]": "int",
            "TeacherPhotoUrls": "list", "TeacherPhotoUrls[]": "?", "Teachers": "list",
            "Teachers[]": "str", "Weekdays": "int"}),
        **_nest("Days[]", {"Date": "str", "Minutes": "num", "Pass": "bool",
                           "Description": "str", "StudentPayableMinutes": "num",
                           "TeacherPayableMinutes": "num",
                           "ScheduleItemIds": "list", "ScheduleItemIds[]": "?"}),
        **_nest("FiscalInfo", {"PriceId": "int", "PriceName": "str", "PriceValue": "str",
                               "Units": "str", "Units28": "str", "Units7": "str",
                               "Value": "str", "Value28": "str", "Value7": "str"}),
        **_nest("TeacherPrices[]", {"PriceId": "int", "PriceName": "str", "PriceUnits": "str",
                                    "PriceUnitsQuantity": "int", "PriceUnitsType": "str",
                                    "PriceValues": "list", "TeacherId": "int"}),
        **_nest("TeacherPrices[].PriceValues[]", {"Students": "int", "Value": "str",
                                                 "ValueCurrency": "str",
                                                 "ValueQuantity": "num"}),
    ),
    "GetEdUnitStudents": dict(
        {"EdUnitId": "int", "EdUnitType": "str", "EdUnitName": "str",
         "EdUnitCorporative": "bool", "EdUnitOfficeOrCompanyId": "int",
         "EdUnitOfficeOrCompanyName": "str", "EdUnitDiscipline": "str", "EdUnitLevel": "str",
         "EdUnitMaturity": "str", "EdUnitLearningType": "str", "StudentClientId": "int",
         "StudentName": "str", "StudentMobile": "str", "StudentPhone": "str",
         "StudentEMail": "str", "StudentAgents": "list", "StudentExtraFields": "list",
         "StudentExtraFields[].Name": "str", "StudentExtraFields[].Value": "str",
         "BeginDate": "str", "EndDate": "str", "BeginTime": "str", "EndTime": "str",
         "Weekdays": "int", "Status": "str", "StudyMinutes": "num", "StudyUnits": "str",
         "Days": "list", "Payers": "list"},
        **_nest("StudentAgents[]", _AGENT),
        # student-level Day (added to the strict client 2024-01-25 for queryDays=true)
        **_nest("Days[]", {"Date": "str", "Minutes": "num", "Pass": "bool",
                           "StudentPayableMinutes": "num", "TeacherPayableMinutes": "num",
                           "Description": "str", "Accepted": "?", "AcceptedDescription": "?"}),
        **_nest("Payers[]", {
            "ClientId": "int", "IsCompany": "bool", "Name": "str", "Actual": "bool",
            "TerminatedContracts": "list", "PriceId": "int", "PriceName": "str",
            "Discounts": "list", "Surcharges": "list", "PayableMinutes": "int",
            "PayableUnits": "str", "PayableMinutesRanged": "int", "PayableUnitsRanged": "str",
            "Value": "str", "ValueRanged": "str", "ValuePaidRanged": "str",
            "ContractValue": "str", "ContractValueRestored": "str",
            "ContractValueRanged": "str", "ContractValueRangedRestored": "str",
            "DebtDate": "str", "EdUnitPayments": "list"}),
    ),
    "GetStudents": dict(
        {"ClientId": "int", "Id": "int", "Created": "str", "Updated": "str",
         "FirstName": "str", "LastName": "str", "MiddleName": "str", "PhotoUrls": "?",
         "Gender": "?", "AddressDate": "str", "AdSoure": "str", "VisitDateTime": "str",
         "StatusId": "int", "Status": "str", "Birthday": "str", "Mobile": "str",
         "UseMobileBySystem": "bool", "EMail": "str", "UseEMailBySystem": "bool",
         "Skype": "str", "Address": "str", "SocialNetworkPage": "str",
         "JobOrStudyPlace": "str", "Position": "str", "Agents": "list", "Maturity": "str",
         "LearningTypes": "list", "LearningTypes[]": "str", "Disciplines": "list",
         "Disciplines[].Discipline": "str", "Disciplines[].Level": "str",
         "OfficesAndCompanies": "list", "OfficesAndCompanies[].Id": "int",
         "OfficesAndCompanies[].Name": "str", "Assignees": "list", "Assignees[].Id": "int",
         "Assignees[].FullName": "str", "ExtraFields": "list", "ExtraFields[].Name": "str",
         "ExtraFields[].Value": "str", "AdSource": "str", "Phone": "str",
         # nested with queryStudyRequests=true
         "StudyRequests": "list", "StudyRequests[].Id": "int", "StudyRequests[].Created": "str",
         "StudyRequests[].Utm": "?", "StudyRequests[].Reffer": "str",
         "StudyRequests[].LeadId": "int", "StudyRequests[].Utm.Source": "str",
         "StudyRequests[].Utm.Medium": "str", "StudyRequests[].Utm.Campaign": "str",
         "StudyRequests[].Utm.Term": "str", "StudyRequests[].Utm.Content": "str"},
        **_nest("Agents[]", _AGENT),
    ),
    "GetLeads": dict(
        {"Id": "int", "Created": "str", "Updated": "str", "FirstName": "str",
         "LastName": "str", "MiddleName": "str", "AddressDate": "str", "AdSource": "str",
         "StatusId": "int", "Status": "str", "Birthday": "str", "Phone": "str",
         "Mobile": "str", "UseMobileBySystem": "bool", "EMail": "str",
         "UseEMailBySystem": "bool", "Maturity": "str", "LearningType": "str",
         "Discipline": "str", "Level": "str", "Agents": "list", "OfficesAndCompanies": "list",
         "Assignees": "list", "ExtraFields": "list", "StudentClientId": "int"},
        **_nest("Agents[]", _AGENT),
    ),
    "GetOffices": {"Id": "int", "Name": "str", "Location": "str", "Address": "str",
                   "EMail": "str", "Phone": "str", "NoClassrooms": "bool", "TimeZone": "str",
                   "License": "str"},
    "GetLevels": {"Name": "str", "Disciplines": "list", "Disciplines[]": "str"},
}

# Root keys of responses: the list key, and "Now" where a client reads it.
ROOTS = {
    "GetLocations": {"Locations"}, "GetOffices": {"Offices"}, "GetLeadStatuses": {"Statuses"},
    "GetTeachers": {"Teachers"}, "GetStudents": {"Students", "Now"},
    "GetLeads": {"Leads", "Now"}, "GetPayments": {"Payments"},
    "GetEdUnits": {"EdUnits", "Now"}, "GetEdUnitStudents": {"EdUnitStudents"},
    "GetLevels": {"Levels"},
}

# The statuses= values of GetEdUnits (the strict client's enum); rows have no Status.
ED_UNIT_STATUSES = ("Reserve", "Forming", "Working", "Stopped", "Finished")

# Fixtures next to this file whose shape comes from the field lists above (plus the
# assumptions docs/api/hollihop.md names), not from a real payload: not evidence themselves.
FIELD_LIST_FIXTURES = ("GetEdUnits.json", "GetEdUnitStudents_days.json")
