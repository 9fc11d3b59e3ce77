use serde_json::json;

use super::*;

const MAPPING: &str = r#"
[[table]]
table = "ocpi.locations"
module = "locations"
path = "/{country_code}/{party_id}/{id}"
[table.fields]
id = "id"
last_updated = { column = "last_updated", as = "datetime" }
[[table.children]]
table = "ocpi.evses"
field = "evses"
join = { country_code = "country_code", party_id = "party_id", location_id = "id" }

[[table]]
table = "ocpi.evses"
module = "locations"
path = "/{country_code}/{party_id}/{location_id}/{uid}"
[table.fields]
uid = "uid"
status = "status"
last_updated = { column = "last_updated", as = "datetime" }
[table.soft_delete]
column = "status"
value = "REMOVED"
[[table.children]]
table = "ocpi.connectors"
field = "connectors"
join = { country_code = "country_code", party_id = "party_id", location_id = "location_id", evse_uid = "uid" }

[[table]]
table = "ocpi.connectors"
module = "locations"
path = "/{country_code}/{party_id}/{location_id}/{evse_uid}/{id}"
[table.fields]
id = "id"
last_updated = { column = "last_updated", as = "datetime" }
"#;

fn config() -> MappingConfig {
    MappingConfig::parse(MAPPING, "test").unwrap()
}

fn row(value: Value) -> Row {
    value.as_object().unwrap().clone()
}

fn connector(id: &str, at: &str) -> Node {
    Node {
        row: row(
            json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                        "evse_uid": "E1", "id": id, "last_updated": at}),
        ),
        children: vec![],
    }
}

#[test]
fn a_connector_change_targets_its_evse_and_every_tree_shares_its_locations_lane() {
    let config = config();
    let connectors = config.get("ocpi", "connectors").unwrap();
    let image = row(
        json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                           "evse_uid": "E1", "id": "2"}),
    );
    let target = target_of(&config, connectors, &image).unwrap();
    assert_eq!(target.mapping.table, "evses");
    assert_eq!(target.key(), "locations/NL/EXA/L1/E1");
    let root = root_of(&config, &target);
    assert_eq!(root.mapping.table, "locations");
    assert_eq!(root.key(), "locations/NL/EXA/L1");
    // An EVSE (it has children) is its own target; a Location is its own root.
    let evses = config.get("ocpi", "evses").unwrap();
    let image = row(
        json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                           "uid": "E1", "status": "AVAILABLE"}),
    );
    assert_eq!(
        target_of(&config, evses, &image).unwrap().key(),
        "locations/NL/EXA/L1/E1"
    );
}

#[test]
fn a_change_without_its_path_values_cannot_name_an_object() {
    let config = config();
    let connectors = config.get("ocpi", "connectors").unwrap();
    let image = row(json!({"country_code": "NL", "party_id": "EXA", "location_id": null}));
    assert!(target_of(&config, connectors, &image).is_err());
}

#[test]
fn an_evse_put_nests_its_connectors_and_carries_the_trees_newest_last_updated() {
    let config = config();
    let evses = config.get("ocpi", "evses").unwrap();
    let node = Node {
        row: row(
            json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                        "uid": "E1", "status": "REMOVED", "last_updated": "2026-01-01T10:00:00.000"}),
        ),
        children: vec![(
            "connectors".into(),
            vec![
                connector("1", "2026-01-01T09:00:00.000"),
                connector("2", "2026-01-01T11:00:00.500"),
            ],
        )],
    };
    let plan = plan_put(&config, evses, &node, OcpiVersion::V221, None).unwrap();
    assert_eq!(plan.method, Method::Put);
    assert_eq!(plan.path_ids, ["NL", "EXA", "L1", "E1"]);
    let body = plan.body.unwrap();
    assert_eq!(body["status"], "REMOVED");
    assert_eq!(body["connectors"][0]["id"], "1");
    assert_eq!(body["connectors"][1]["id"], "2");
    assert_eq!(body["last_updated"], "2026-01-01T11:00:00.500Z");
    // A commit newer than every row (a connector deleted since) is the floor.
    let plan = plan_put(
        &config,
        evses,
        &node,
        OcpiVersion::V221,
        Some("2026-01-01T12:00:00Z"),
    )
    .unwrap();
    assert_eq!(plan.body.unwrap()["last_updated"], "2026-01-01T12:00:00Z");
}

#[test]
fn a_location_put_carries_every_evse_with_its_connectors_and_an_empty_list_when_none() {
    let config = config();
    let locations = config.get("ocpi", "locations").unwrap();
    let evse = Node {
        row: row(
            json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                        "uid": "E1", "status": "AVAILABLE", "last_updated": "2026-01-01T10:00:00.000"}),
        ),
        children: vec![(
            "connectors".into(),
            vec![connector("1", "2026-01-01T09:00:00.000")],
        )],
    };
    let node = Node {
        row: row(json!({"country_code": "NL", "party_id": "EXA", "id": "L1",
                        "last_updated": "2026-01-01T08:00:00.000"})),
        children: vec![("evses".into(), vec![evse])],
    };
    let body = plan_put(&config, locations, &node, OcpiVersion::V221, None)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(body["evses"][0]["connectors"][0]["id"], "1");
    assert_eq!(body["last_updated"], "2026-01-01T10:00:00.000Z");
    let empty = Node {
        row: node.row.clone(),
        children: vec![("evses".into(), vec![])],
    };
    let body = plan_put(&config, locations, &empty, OcpiVersion::V221, None)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(body["evses"], json!([]));
}

#[test]
fn links_that_ocpi_cannot_express_are_refused_when_the_mapping_is_loaded() {
    let wrong_field = MAPPING.replacen("field = \"connectors\"", "field = \"plugs\"", 1);
    let err = MappingConfig::parse(&wrong_field, "m")
        .unwrap_err()
        .to_string();
    assert!(err.contains("connectors") && err.contains("plugs"), "{err}");
    let patch = MAPPING.replacen(
        "path = \"/{country_code}/{party_id}/{location_id}/{uid}\"",
        "path = \"/{country_code}/{party_id}/{location_id}/{uid}\"\nupdate = \"patch\"",
        1,
    );
    let err = MappingConfig::parse(&patch, "m").unwrap_err().to_string();
    assert!(
        err.contains("update") && err.contains("PUT of the complete object"),
        "{err}"
    );
    let unjoined = MAPPING.replacen(", evse_uid = \"uid\"", "", 1);
    let err = MappingConfig::parse(&unjoined, "m")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`uid` is not joined"), "{err}");
}

#[test]
fn an_evse_without_connectors_is_not_sent_alone_nor_inside_its_location() {
    let config = config();
    let evses = config.get("ocpi", "evses").unwrap();
    let bare = Node {
        row: row(
            json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                        "uid": "E2", "status": "AVAILABLE", "last_updated": "2026-01-01T10:00:00.000"}),
        ),
        children: vec![("connectors".into(), vec![])],
    };
    let err = plan_put(&config, evses, &bare, OcpiVersion::V221, None).unwrap_err();
    assert!(
        err.is_nothing_to_send() && err.to_string().contains("first connector"),
        "{err}"
    );
    let locations = config.get("ocpi", "locations").unwrap();
    let node = Node {
        row: row(json!({"country_code": "NL", "party_id": "EXA", "id": "L1",
                        "last_updated": "2026-01-01T08:00:00.000"})),
        children: vec![("evses".into(), vec![bare])],
    };
    let body = plan_put(&config, locations, &node, OcpiVersion::V221, None)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(body["evses"], json!([]));
}

/// A sessions table embedding its Location for 2.1.1, to append to [`MAPPING`].
const SESSIONS: &str = r#"
[[table]]
table = "ocpi.sessions"
module = "sessions"
path = "/{country_code}/{party_id}/{id}"
[table.fields]
id = "id"
last_updated = { column = "last_updated", as = "datetime" }
[[table.embed]]
field = "location"
table = "ocpi.locations"
join = { country_code = "country_code", party_id = "party_id", id = "location_id" }
only = { "ocpi.evses" = { uid = "evse_uid" }, "ocpi.connectors" = { id = "connector_id" } }
versions = ["2.1.1"]
"#;

fn config_with_sessions() -> MappingConfig {
    MappingConfig::parse(&format!("{MAPPING}{SESSIONS}"), "test").unwrap()
}

fn evse(uid: &str, connectors: Vec<Node>) -> Node {
    Node {
        row: row(
            json!({"country_code": "NL", "party_id": "EXA", "location_id": "L1",
                        "uid": uid, "status": "CHARGING", "last_updated": "2026-03-01 10:00:00.000"}),
        ),
        children: vec![("connectors".into(), connectors)],
    }
}

#[test]
fn an_embedded_location_keeps_only_the_evse_and_connector_the_session_names() {
    let config = config_with_sessions();
    let sessions = config.get("ocpi", "sessions").unwrap();
    let embed = &sessions.embeds[0];
    let locations = config.get("ocpi", "locations").unwrap();
    let session = row(json!({"country_code": "NL", "party_id": "EXA", "id": "S1",
                             "location_id": "L1", "evse_uid": "e2", "connector_id": "2"}));
    let mut node = Node {
        row: row(json!({"country_code": "NL", "party_id": "EXA", "id": "L1",
                        "last_updated": "2026-03-01 09:00:00.000"})),
        children: vec![(
            "evses".into(),
            vec![
                evse("E1", vec![connector("1", "2026-03-01 09:00:00.000")]),
                evse(
                    "E2",
                    vec![
                        connector("1", "2026-03-01 09:00:00.000"),
                        connector("2", "2026-03-01 11:00:00.000"),
                    ],
                ),
            ],
        )],
    };
    keep_only(&config, locations, &mut node, embed, &session);
    let object = render_embedded(&config, locations, &node, OcpiVersion::V211).unwrap();
    // Ids compare as the database compares them: "e2" names EVSE "E2".
    assert_eq!(
        object,
        json!({"id": "L1", "last_updated": "2026-03-01T11:00:00.000Z",
               "evses": [{"uid": "E2", "status": "CHARGING",
                          "last_updated": "2026-03-01T11:00:00.000Z",
                          "connectors": [{"id": "2", "last_updated": "2026-03-01T11:00:00.000Z"}]}]})
    );
}

#[test]
fn an_embed_must_name_the_root_of_a_tree_joined_on_its_whole_path() {
    let text = format!("{MAPPING}{SESSIONS}");
    for (from, to, expected) in [
        (
            "table = \"ocpi.locations\"\njoin",
            "table = \"ocpi.evses\"\njoin",
            "not a Locations table",
        ),
        (
            "party_id = \"party_id\", id = \"location_id\" }",
            "id = \"location_id\" }",
            "`party_id` is not joined",
        ),
        (
            "\"ocpi.evses\" = { uid",
            "\"ocpi.tariffs\" = { uid",
            "not a child table",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let err = MappingConfig::parse(&text.replacen(from, to, 1), "test").unwrap_err();
        assert!(err.to_string().contains(expected), "{from}: {err}");
    }
}
