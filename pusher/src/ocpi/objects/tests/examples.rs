// Why this file exists: complete, valid objects of every kind in every version, modelled on the
// specification's own examples (with our own ids and values), for the tests to pass whole and to
// break one rule at a time.

use serde_json::{json, Value};

pub(super) const T: &str = "2026-03-01T08:00:00Z";

fn image() -> Value {
    json!({"url": "https://cpo.example.com/img/garage.jpg",
           "thumbnail": "https://cpo.example.com/img/garage-small.jpg",
           "category": "LOCATION", "type": "jpeg", "width": 1024, "height": 768})
}

fn geo() -> Value {
    json!({"latitude": "52.090736", "longitude": "5.121420"})
}

fn text(language: &str, text: &str) -> Value {
    json!({"language": language, "text": text})
}

// ---- OCPI 2.1.1

pub(super) fn connector_211(id: &str) -> Value {
    json!({"id": id, "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
           "voltage": 230, "amperage": 32, "tariff_id": "AC-STANDARD",
           "terms_and_conditions": "https://cpo.example.com/terms", "last_updated": T})
}

pub(super) fn evse_211() -> Value {
    json!({"uid": "3256", "evse_id": "NL-CPO-E0001", "status": "AVAILABLE",
           "status_schedule": [{"period_begin": "2026-04-01T00:00:00Z", "status": "PLANNED"}],
           "capabilities": ["RESERVABLE", "RFID_READER"],
           "connectors": [connector_211("1"), connector_211("2")],
           "floor_level": "-1", "coordinates": geo(), "physical_reference": "1",
           "directions": [text("en", "Level -1, bay 4")], "parking_restrictions": ["EV_ONLY"],
           "images": [image()], "last_updated": T})
}

pub(super) fn location_211() -> Value {
    json!({"id": "LOC1", "type": "PARKING_GARAGE", "name": "Stationsplein garage",
           "address": "Stationsplein 1", "city": "Utrecht", "postal_code": "3511 ED",
           "country": "NLD", "coordinates": geo(),
           "related_locations": [{"latitude": "52.090500", "longitude": "5.121000",
                                  "name": text("nl", "Ingang")}],
           "evses": [evse_211()], "directions": [text("nl", "Volg de borden P1")],
           "operator": {"name": "Example CPO", "website": "https://cpo.example.com",
                        "logo": image()},
           "owner": {"name": "Gemeente Utrecht"},
           "facilities": ["TRAIN_STATION", "CAFE"], "time_zone": "Europe/Amsterdam",
           "opening_times": {"regular_hours": [
               {"weekday": 1, "period_begin": "07:00", "period_end": "23:00"},
               {"weekday": 6, "period_begin": "09:00", "period_end": "18:00"}],
               "exceptional_closings": [{"period_begin": "2026-12-25T00:00:00Z",
                                         "period_end": "2026-12-26T00:00:00Z"}]},
           "charging_when_closed": true, "images": [image()],
           "energy_mix": {"is_green_energy": false,
                          "energy_sources": [{"source": "SOLAR", "percentage": 35.5},
                                             {"source": "GAS", "percentage": 64.5}],
                          "environ_impact": [{"source": "CARBON_DIOXIDE", "amount": 210}],
                          "supplier_name": "Example Energy", "energy_product_name": "Mixed"},
           "last_updated": T})
}

fn charging_period_211() -> Value {
    json!({"start_date_time": "2026-03-01T08:05:00Z",
           "dimensions": [{"type": "ENERGY", "volume": 12.5}, {"type": "TIME", "volume": 1.25}]})
}

pub(super) fn session_211() -> Value {
    json!({"id": "SES-0001", "start_datetime": "2026-03-01T08:05:00Z",
           "end_datetime": "2026-03-01T09:20:00Z", "kwh": 12.5, "auth_id": "NL-MSP-C12345678",
           "auth_method": "WHITELIST", "location": location_211(), "meter_id": "M-77",
           "currency": "EUR", "charging_periods": [charging_period_211()], "total_cost": 4.25,
           "status": "COMPLETED", "last_updated": T})
}

pub(super) fn tariff_211() -> Value {
    json!({"id": "AC-STANDARD", "currency": "EUR",
           "tariff_alt_text": [text("en", "0.25 per kWh, 1.00 per hour after 2 hours")],
           "tariff_alt_url": "https://cpo.example.com/tariffs/ac",
           "elements": [
               {"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]},
               {"price_components": [{"type": "TIME", "price": 1.00, "step_size": 300}],
                "restrictions": {"start_time": "08:00", "end_time": "20:00",
                                 "start_date": "2026-01-01", "min_duration": 7200,
                                 "day_of_week": ["MONDAY", "TUESDAY"]}}],
           "last_updated": T})
}

pub(super) fn cdr_211() -> Value {
    json!({"id": "CDR-0001", "start_date_time": "2026-03-01T08:05:00Z",
           "stop_date_time": "2026-03-01T09:20:00Z", "auth_id": "NL-MSP-C12345678",
           "auth_method": "AUTH_REQUEST", "location": location_211(), "meter_id": "M-77",
           "currency": "EUR", "tariffs": [tariff_211()],
           "charging_periods": [charging_period_211()], "total_cost": 4.25,
           "total_energy": 12.5, "total_time": 1.25, "total_parking_time": 0,
           "remark": "Normal end", "last_updated": T})
}

pub(super) fn token_211() -> Value {
    json!({"uid": "012345678", "type": "RFID", "auth_id": "NL-MSP-C12345678",
           "visual_number": "NL-MSP-012345678", "issuer": "Example MSP", "valid": true,
           "whitelist": "ALLOWED", "language": "nl", "last_updated": T})
}

// ---- OCPI 2.2.1

pub(super) fn connector_221(id: &str) -> Value {
    json!({"id": id, "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
           "max_voltage": 230, "max_amperage": 32, "max_electric_power": 22000,
           "tariff_ids": ["AC-STANDARD"], "terms_and_conditions": "https://cpo.example.com/terms",
           "last_updated": T})
}

pub(super) fn evse_221() -> Value {
    json!({"uid": "EVSE-0001", "evse_id": "NL*CPO*E0001*1", "status": "AVAILABLE",
           "status_schedule": [{"period_begin": "2026-04-01T00:00:00Z",
                                "period_end": "2026-04-02T00:00:00Z", "status": "INOPERATIVE"}],
           "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"],
           "connectors": [connector_221("1"), connector_221("2")],
           "floor_level": "-1", "coordinates": geo(), "physical_reference": "P1",
           "directions": [text("en", "Level -1, bay 4")], "parking_restrictions": ["EV_ONLY"],
           "images": [image()], "last_updated": T})
}

pub(super) fn location_221() -> Value {
    json!({"country_code": "NL", "party_id": "CPO", "id": "LOC-0001", "publish": false,
           "publish_allowed_to": [{"uid": "012345678", "type": "RFID"},
                                  {"visual_number": "NL-MSP-012345678", "issuer": "Example MSP"}],
           "name": "Stationsplein garage", "address": "Stationsplein 1", "city": "Utrecht",
           "postal_code": "3511 ED", "state": "Utrecht", "country": "NLD", "coordinates": geo(),
           "related_locations": [{"latitude": "52.090500", "longitude": "5.121000",
                                  "name": text("nl", "Ingang")}],
           "parking_type": "PARKING_GARAGE", "evses": [evse_221()],
           "directions": [text("nl", "Volg de borden P1")],
           "operator": {"name": "Example CPO", "website": "https://cpo.example.com",
                        "logo": image()},
           "suboperator": {"name": "Example Sub"}, "owner": {"name": "Gemeente Utrecht"},
           "facilities": ["TRAIN_STATION", "CAFE"], "time_zone": "Europe/Amsterdam",
           "opening_times": {"twentyfourseven": false, "regular_hours": [
               {"weekday": 1, "period_begin": "07:00", "period_end": "23:00"}],
               "exceptional_openings": [{"period_begin": "2026-06-21T21:00:00Z",
                                         "period_end": "2026-06-22T02:00:00Z"}]},
           "charging_when_closed": true, "images": [image()],
           "energy_mix": {"is_green_energy": false,
                          "energy_sources": [{"source": "SOLAR", "percentage": 35.5},
                                             {"source": "GAS", "percentage": 64.5}],
                          "environ_impact": [{"category": "CARBON_DIOXIDE", "amount": 210}],
                          "supplier_name": "Example Energy", "energy_product_name": "Mixed"},
           "last_updated": T})
}

fn cdr_token_221() -> Value {
    json!({"country_code": "NL", "party_id": "MSP", "uid": "012345678", "type": "RFID",
           "contract_id": "NL-MSP-C12345678-9"})
}

fn charging_period_221() -> Value {
    json!({"start_date_time": "2026-03-01T08:05:00Z",
           "dimensions": [{"type": "ENERGY", "volume": 12.5}, {"type": "MAX_POWER", "volume": 11}],
           "tariff_id": "AC-STANDARD"})
}

pub(super) fn session_221() -> Value {
    json!({"country_code": "NL", "party_id": "CPO", "id": "SES-0001",
           "start_date_time": "2026-03-01T08:05:00Z", "end_date_time": "2026-03-01T09:20:00Z",
           "kwh": 12.5, "cdr_token": cdr_token_221(), "auth_method": "COMMAND",
           "authorization_reference": "AUTH-77", "location_id": "LOC-0001",
           "evse_uid": "EVSE-0001", "connector_id": "1", "meter_id": "M-77", "currency": "EUR",
           "charging_periods": [charging_period_221()],
           "total_cost": {"excl_vat": 3.57, "incl_vat": 4.32}, "status": "COMPLETED",
           "last_updated": T})
}

pub(super) fn tariff_221() -> Value {
    json!({"country_code": "NL", "party_id": "CPO", "id": "AC-STANDARD", "currency": "EUR",
           "type": "REGULAR", "tariff_alt_text": [text("en", "0.25 per kWh")],
           "tariff_alt_url": "https://cpo.example.com/tariffs/ac",
           "min_price": {"excl_vat": 0.50, "incl_vat": 0.61},
           "elements": [
               {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 21.0,
                                      "step_size": 1}]},
               {"price_components": [{"type": "PARKING_TIME", "price": 2.00, "step_size": 300}],
                "restrictions": {"start_time": "08:00", "end_time": "20:00", "min_kwh": 0,
                                 "max_current": 32, "max_duration": 14400,
                                 "day_of_week": ["SATURDAY"], "reservation": "RESERVATION"}}],
           "start_date_time": "2026-01-01T00:00:00Z", "energy_mix": {"is_green_energy": true},
           "last_updated": T})
}

pub(super) fn cdr_221() -> Value {
    json!({"country_code": "NL", "party_id": "CPO", "id": "CDR-0001",
           "start_date_time": "2026-03-01T08:05:00Z", "end_date_time": "2026-03-01T09:20:00Z",
           "session_id": "SES-0001", "cdr_token": cdr_token_221(), "auth_method": "WHITELIST",
           "cdr_location": {"id": "LOC-0001", "name": "Stationsplein garage",
                            "address": "Stationsplein 1", "city": "Utrecht",
                            "postal_code": "3511 ED", "country": "NLD", "coordinates": geo(),
                            "evse_uid": "EVSE-0001", "evse_id": "NL*CPO*E0001*1",
                            "connector_id": "1", "connector_standard": "IEC_62196_T2",
                            "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
           "meter_id": "M-77", "currency": "EUR", "tariffs": [tariff_221()],
           "charging_periods": [charging_period_221()],
           "signed_data": {"encoding_method": "OCMF", "encoding_method_version": 1,
                           "public_key": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
                           "signed_values": [{"nature": "Start", "plain_data": "OCMF|{}",
                                              "signed_data": "MEUCIQDx"}],
                           "url": "https://cpo.example.com/verify/CDR-0001"},
           "total_cost": {"excl_vat": 3.57, "incl_vat": 4.32},
           "total_fixed_cost": {"excl_vat": 0.0}, "total_energy": 12.5,
           "total_energy_cost": {"excl_vat": 3.12}, "total_time": 1.25,
           "total_time_cost": {"excl_vat": 0.45}, "total_parking_time": 0.0,
           "remark": "Normal end", "credit": false, "home_charging_compensation": false,
           "last_updated": T})
}

pub(super) fn token_221() -> Value {
    json!({"country_code": "NL", "party_id": "MSP", "uid": "012345678", "type": "RFID",
           "contract_id": "NL-MSP-C12345678-9", "visual_number": "NL-MSP-012345678",
           "issuer": "Example MSP", "group_id": "FLEET-7", "valid": true,
           "whitelist": "ALLOWED", "language": "nl", "default_profile_type": "GREEN",
           "energy_contract": {"supplier_name": "Example Energy", "contract_id": "EE-1"},
           "last_updated": T})
}

// ---- OCPI 2.3.0: the 2.2.1 objects with what 2.3.0 changed or added

/// A 2.3.0 Price: before taxes, and the taxes one by one.
pub(super) fn price_230(before_taxes: f64) -> Value {
    json!({"before_taxes": before_taxes,
           "taxes": [{"name": "VAT", "account_number": "NL001234567B01", "percentage": 21.0,
                      "amount": before_taxes * 0.21}]})
}

pub(super) fn connector_230(id: &str) -> Value {
    let mut c = connector_221(id);
    c["standard"] = json!("SAE_J3400");
    c["capabilities"] = json!(["ISO_15118_2_PLUG_AND_CHARGE"]);
    c
}

pub(super) fn evse_230() -> Value {
    let mut e = evse_221();
    e["connectors"] = json!([connector_230("1"), connector_230("2")]);
    e["parking_restrictions"] = json!(["TAXIS"]);
    e["parking"] = json!([{"parking_id": "BAY-4", "evse_position": "LEFT"}]);
    e["accepted_service_providers"] = json!(["Example MSP"]);
    e
}

pub(super) fn location_230() -> Value {
    let mut l = location_221();
    l["address"] = json!("Stationsplein 1, entrance via the Jaarbeursplein side, level -1");
    l["evses"] = json!([evse_230()]);
    l["parking_places"] = json!([{
        "id": "BAY-4", "physical_reference": "P-4", "vehicle_types": ["PERSONAL_VEHICLE", "VAN"],
        "max_vehicle_height": 210, "parking_space_length": 500, "parking_space_width": 250,
        "dangerous_goods_allowed": false, "direction": "PERPENDICULAR", "drive_through": false,
        "restricted_to_type": true, "reservation_required": false, "roofed": true,
        "lighting": true, "standards": ["PAS 1899"]}]);
    l["help_phone"] = json!("+31 30 123 4567");
    l
}

pub(super) fn session_230() -> Value {
    let mut s = session_221();
    s["total_cost"] = price_230(3.57);
    s
}

pub(super) fn tariff_230() -> Value {
    let mut t = tariff_221();
    t["min_price"] = json!({"before_taxes": 0.50, "after_taxes": 0.61});
    t["tax_included"] = json!("NO");
    t
}

pub(super) fn cdr_230() -> Value {
    let mut c = cdr_221();
    for field in [
        "total_cost",
        "total_fixed_cost",
        "total_energy_cost",
        "total_time_cost",
    ] {
        let before = c[field]["excl_vat"].as_f64().unwrap_or_default();
        c[field] = price_230(before);
    }
    c["cdr_location"]["connector_standard"] = json!("MCS");
    c["tariffs"] = json!([tariff_230()]);
    c
}

pub(super) fn token_230() -> Value {
    let mut t = token_221();
    t["type"] = json!("EMAID");
    t
}
