//! Small valid objects of every module the double receives, per OCPI version: what tests send
//! when the object's content is not the point, and the baseline the double's own rule tests
//! break one field of. Each keeps the rules of its version (see the `rules` module) with the
//! required fields and a few optional ones (a cost, so the version's Price shape is exercised).

use serde_json::{json, Value};

use super::PartnerVersion;

/// The country code and party id of the CPO owning the example objects ("NL", "CPO").
pub const CPO: (&str, &str) = ("NL", "CPO");
/// The country code and party id of the eMSP owning the example tokens ("DE", "MSP").
pub const EMSP: (&str, &str) = ("DE", "MSP");

/// A Location without EVSEs (2.1.1: with type and postal_code; later: with country_code,
/// party_id, publish and time_zone).
pub fn location(version: PartnerVersion, id: &str, last_updated: &str) -> Value {
    let mut location = json!({
        "id": id,
        "address": "Main street 1",
        "city": "Utrecht",
        "postal_code": "3511 AA",
        "country": "NLD",
        "coordinates": {"latitude": "52.0907", "longitude": "5.1214"},
        "last_updated": last_updated,
    });
    if version == PartnerVersion::V211 {
        location["type"] = json!("ON_STREET");
    } else {
        location["country_code"] = json!(CPO.0);
        location["party_id"] = json!(CPO.1);
        location["publish"] = json!(true);
        location["time_zone"] = json!("Europe/Amsterdam");
    }
    location
}

/// An EVSE with one connector "1".
pub fn evse(version: PartnerVersion, uid: &str, status: &str, last_updated: &str) -> Value {
    json!({
        "uid": uid,
        "status": status,
        "connectors": [connector(version, "1", last_updated)],
        "last_updated": last_updated,
    })
}

/// A Type 2 socket, AC three phases, 230 V 32 A.
pub fn connector(version: PartnerVersion, id: &str, last_updated: &str) -> Value {
    let (voltage, amperage) = if version == PartnerVersion::V211 {
        ("voltage", "amperage")
    } else {
        ("max_voltage", "max_amperage")
    };
    json!({
        "id": id,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        voltage: 230,
        amperage: 32,
        "last_updated": last_updated,
    })
}

/// An amount of money in the version's shape: a number (2.1.1), `{excl_vat, incl_vat}`
/// (2.2.1), `{before_taxes, taxes}` (2.3.0) with 21 % VAT.
pub fn price(version: PartnerVersion, before_taxes: f64) -> Value {
    let tax = (before_taxes * 21.0).round() / 100.0;
    match version {
        PartnerVersion::V211 => json!(before_taxes),
        PartnerVersion::V221 => json!({"excl_vat": before_taxes, "incl_vat": before_taxes + tax}),
        PartnerVersion::V230 => json!({
            "before_taxes": before_taxes,
            "taxes": [{"name": "VAT", "percentage": 21, "amount": tax}],
        }),
    }
}

/// An ACTIVE Session at EVSE "E1" connector "1" of Location "LOC1" with 1.5 kWh so far.
pub fn session(version: PartnerVersion, id: &str, last_updated: &str) -> Value {
    let mut session = json!({
        "id": id,
        "kwh": 1.5,
        "auth_method": "WHITELIST",
        "currency": "EUR",
        "total_cost": price(version, 0.38),
        "status": "ACTIVE",
        "last_updated": last_updated,
    });
    if version == PartnerVersion::V211 {
        let mut location = location(version, "LOC1", last_updated);
        location["evses"] = json!([evse(version, "E1", "CHARGING", last_updated)]);
        session["start_datetime"] = json!("2024-05-01T10:00:00Z");
        session["auth_id"] = json!("DE-MSP-C00000001-1");
        session["location"] = location;
    } else {
        session["country_code"] = json!(CPO.0);
        session["party_id"] = json!(CPO.1);
        session["start_date_time"] = json!("2024-05-01T10:00:00Z");
        session["cdr_token"] = cdr_token();
        session["location_id"] = json!("LOC1");
        session["evse_uid"] = json!("E1");
        session["connector_id"] = json!("1");
    }
    session
}

fn cdr_token() -> Value {
    json!({
        "country_code": EMSP.0,
        "party_id": EMSP.1,
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "DE-MSP-C00000001-1",
    })
}

/// A charging period of `kwh` energy starting at `start`.
pub fn charging_period(start: &str, kwh: f64) -> Value {
    json!({"start_date_time": start, "dimensions": [{"type": "ENERGY", "volume": kwh}]})
}

/// A CDR of 12.5 kWh in one hour at EVSE "E1" connector "1" of Location "LOC1".
pub fn cdr(version: PartnerVersion, id: &str) -> Value {
    let mut cdr = json!({
        "id": id,
        "start_date_time": "2024-05-01T10:00:00Z",
        "auth_method": "WHITELIST",
        "currency": "EUR",
        "charging_periods": [charging_period("2024-05-01T10:00:00Z", 12.5)],
        "total_cost": price(version, 3.13),
        "total_energy": 12.5,
        "total_time": 1.0,
        "last_updated": "2024-05-01T11:05:00Z",
    });
    if version == PartnerVersion::V211 {
        let mut location = location(version, "LOC1", "2024-05-01T10:00:00Z");
        location["evses"] = json!([evse(version, "E1", "AVAILABLE", "2024-05-01T10:00:00Z")]);
        cdr["stop_date_time"] = json!("2024-05-01T11:00:00Z");
        cdr["auth_id"] = json!("DE-MSP-C00000001-1");
        cdr["location"] = location;
    } else {
        cdr["country_code"] = json!(CPO.0);
        cdr["party_id"] = json!(CPO.1);
        cdr["end_date_time"] = json!("2024-05-01T11:00:00Z");
        cdr["cdr_token"] = cdr_token();
        cdr["cdr_location"] = json!({
            "id": "LOC1",
            "address": "Main street 1",
            "city": "Utrecht",
            "country": "NLD",
            "coordinates": {"latitude": "52.0907", "longitude": "5.1214"},
            "evse_uid": "E1",
            "evse_id": "NL*CPO*E1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        });
    }
    cdr
}

/// A Tariff of 0.25 per kWh (2.3.0: prices without taxes, `tax_included: "NO"`).
pub fn tariff(version: PartnerVersion, id: &str, last_updated: &str) -> Value {
    let mut tariff = json!({
        "id": id,
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
        "last_updated": last_updated,
    });
    if version != PartnerVersion::V211 {
        tariff["country_code"] = json!(CPO.0);
        tariff["party_id"] = json!(CPO.1);
    }
    if version == PartnerVersion::V230 {
        tariff["tax_included"] = json!("NO");
    }
    tariff
}

/// A valid Token of this type (2.1.1 knows RFID and OTHER only).
pub fn token(version: PartnerVersion, uid: &str, token_type: &str, last_updated: &str) -> Value {
    let mut token = json!({
        "uid": uid,
        "type": token_type,
        "issuer": "Example MSP",
        "valid": true,
        "whitelist": "ALLOWED",
        "last_updated": last_updated,
    });
    if version == PartnerVersion::V211 {
        token["auth_id"] = json!("DE-MSP-C00000001-1");
    } else {
        token["country_code"] = json!(EMSP.0);
        token["party_id"] = json!(EMSP.1);
        token["contract_id"] = json!("DE-MSP-C00000001-1");
    }
    token
}
