use super::*;
use serde_json::json;

#[test]
fn the_object_is_read_from_the_templates_path() {
    let sf = "/services/data/v62.0/sobjects/Lead/";
    assert_eq!(object_of(Vendor::Salesforce, sf), Some("Lead"));
    assert_eq!(
        object_of(Vendor::ServiceNow, "/api/now/table/incident"),
        Some("incident")
    );
    assert_eq!(
        object_of(Vendor::ServiceNow, "/api/now/table/{table}"),
        None
    );
    assert_eq!(object_of(Vendor::Jira, "/rest/api/3/issue"), None);
    for bad in ["", "1st", "Lead/../x", "a b", "Lead?x=1"] {
        assert!(!valid_object(bad), "{bad}");
    }
}

#[test]
fn a_salesforce_describe_gives_its_createable_fields_and_what_the_org_requires() {
    let describe = json!({"fields": [
        {"name": "Id", "label": "Lead ID", "type": "id", "createable": false, "nillable": false, "defaultedOnCreate": true},
        {"name": "LastName", "label": "Last Name", "type": "string", "length": 80, "createable": true, "nillable": false, "defaultedOnCreate": false},
        {"name": "Status", "label": "Status", "type": "picklist", "length": 255, "createable": true, "nillable": false, "defaultedOnCreate": true,
         "picklistValues": [{"value": "Open", "active": true}, {"value": "Old", "active": false}]},
        {"name": "Budget__c", "label": "Budget", "type": "currency", "length": 0, "createable": true, "nillable": true, "defaultedOnCreate": false},
        {"name": "NumberOfEmployees", "label": "Employees", "type": "int", "length": 0, "digits": 8, "createable": true, "nillable": true, "defaultedOnCreate": false}
    ]});
    let fields = salesforce_fields(&describe);
    let names: Vec<(&str, bool)> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.required))
        .collect();
    assert_eq!(
        names,
        [
            ("LastName", true),
            ("Status", false),
            ("Budget__c", false),
            ("NumberOfEmployees", false)
        ]
    );
    let ranges: Vec<_> = fields.iter().map(|f| f.range).collect();
    assert_eq!(
        ranges,
        [None, None, None, Some((-99_999_999, 99_999_999))],
        "an int of 8 digits"
    );
    assert_eq!(fields[0].max_length, Some(80));
    assert_eq!(fields[1].values, ["Open"]);
    assert_eq!(
        (fields[2].parameter_type, fields[2].max_length),
        (ParameterType::Number, None)
    );
}

#[test]
fn servicenow_columns_come_from_the_table_and_its_parents() {
    let tables = vec!["incident".to_string(), "task".to_string()];
    let dictionary = json!({"result": [
        {"name": "task", "element": "short_description", "column_label": "Short description", "internal_type": "string", "mandatory": "false", "max_length": "160", "read_only": "false"},
        {"name": "task", "element": "priority", "column_label": "Priority", "internal_type": "integer", "mandatory": "false", "max_length": "40", "read_only": "false"},
        {"name": "incident", "element": "priority", "column_label": "Incident priority", "internal_type": "integer", "mandatory": "true", "max_length": "40", "read_only": "false"},
        {"name": "task", "element": "number", "column_label": "Number", "internal_type": "string", "mandatory": "false", "max_length": "40", "read_only": "true"},
        {"name": "task", "element": "sys_id", "column_label": "Sys ID", "internal_type": "GUID", "mandatory": "false", "max_length": "32", "read_only": "false"},
        {"name": "incident", "element": "caller_id", "column_label": "Caller", "internal_type": {"value": "reference"}, "mandatory": "false", "max_length": "32", "read_only": "false"}
    ]});
    let fields = servicenow_fields(&dictionary, &tables);
    let names: Vec<(&str, &str, bool)> = fields
        .iter()
        .map(|f| (f.name.as_str(), f.label.as_str(), f.required))
        .collect();
    assert_eq!(
        names,
        [
            ("caller_id", "Caller", false),
            ("priority", "Incident priority", true),
            ("short_description", "Short description", false)
        ]
    );
    assert_eq!(fields[0].vendor_type, "reference");
    assert_eq!(fields[1].parameter_type, ParameterType::Integer);
    assert_eq!(
        (fields[1].range, fields[2].range),
        (Some((-2_147_483_648, 2_147_483_647)), None),
        "an integer column is 32 bits"
    );
    let mut fields = fields;
    let choices = json!({"result": [
        {"name": "task", "element": "priority", "value": "5", "sequence": "5"},
        {"name": "task", "element": "priority", "value": "1", "sequence": "1"},
        {"name": "incident", "element": "priority", "value": "2", "sequence": "2"},
        {"name": "incident", "element": "priority", "value": "1", "sequence": "1"},
        {"name": "task", "element": "short_description", "value": "x", "sequence": "1"}
    ]});
    add_choices(&mut fields, &choices, &tables);
    assert_eq!(
        fields[1].values,
        ["1", "2"],
        "the incident's own list over task's"
    );
    assert_eq!(fields[2].values, ["x"]);
    assert!(fields[0].values.is_empty());
}
