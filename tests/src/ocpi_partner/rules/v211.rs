//! The object tables of OCPI 2.1.1 (mod_locations, mod_sessions, mod_cdrs, mod_tariffs,
//! mod_tokens, types), as the double checks them. 2.1.1 has no country_code/party_id in objects,
//! strings are printable ASCII, Location ids are string(39), Sessions and CDRs carry a whole
//! Location, Tokens use auth_id and know only RFID and OTHER.

use serde_json::{Map, Value};

use super::Ty::{Bool, CiStr, DateTime, Enum, Int, Num, Obj, Str, Url};
use super::{at_field, at_least_one, many, one, opt, Schema, VersionRules, Violation};

pub(super) static RULES: VersionRules = VersionRules {
    location: &LOCATION,
    evse: &EVSE,
    connector: &CONNECTOR,
    session: &SESSION,
    cdr: &CDR,
    tariff: &TARIFF,
    token: &TOKEN,
    refuse_unknown_fields: true,
    ascii_strings: true,
};

const STATUS: &[&str] = &[
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
];
const CAPABILITY: &[&str] = &[
    "CHARGING_PROFILE_CAPABLE",
    "CREDIT_CARD_PAYABLE",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "UNLOCK_CAPABLE",
];
const CONNECTOR_TYPE: &[&str] = &[
    "CHADEMO",
    "DOMESTIC_A",
    "DOMESTIC_B",
    "DOMESTIC_C",
    "DOMESTIC_D",
    "DOMESTIC_E",
    "DOMESTIC_F",
    "DOMESTIC_G",
    "DOMESTIC_H",
    "DOMESTIC_I",
    "DOMESTIC_J",
    "DOMESTIC_K",
    "DOMESTIC_L",
    "IEC_60309_2_single_16",
    "IEC_60309_2_three_16",
    "IEC_60309_2_three_32",
    "IEC_60309_2_three_64",
    "IEC_62196_T1",
    "IEC_62196_T1_COMBO",
    "IEC_62196_T2",
    "IEC_62196_T2_COMBO",
    "IEC_62196_T3A",
    "IEC_62196_T3C",
    "TESLA_R",
    "TESLA_S",
];
const CONNECTOR_FORMAT: &[&str] = &["SOCKET", "CABLE"];
const POWER_TYPE: &[&str] = &["AC_1_PHASE", "AC_3_PHASE", "DC"];
const LOCATION_TYPE: &[&str] = &[
    "ON_STREET",
    "PARKING_GARAGE",
    "UNDERGROUND_GARAGE",
    "PARKING_LOT",
    "OTHER",
    "UNKNOWN",
];
const FACILITY: &[&str] = &[
    "HOTEL",
    "RESTAURANT",
    "CAFE",
    "MALL",
    "SUPERMARKET",
    "SPORT",
    "RECREATION_AREA",
    "NATURE",
    "MUSEUM",
    "BUS_STOP",
    "TAXI_STAND",
    "TRAIN_STATION",
    "AIRPORT",
    "CARPOOL_PARKING",
    "FUEL_STATION",
    "WIFI",
];
const PARKING_RESTRICTION: &[&str] =
    &["EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"];
const IMAGE_CATEGORY: &[&str] = &[
    "CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER",
];
const ENERGY_SOURCE_CATEGORY: &[&str] = &[
    "NUCLEAR",
    "GENERAL_FOSSIL",
    "COAL",
    "GAS",
    "GENERAL_GREEN",
    "SOLAR",
    "WIND",
    "WATER",
];
const ENVIRONMENTAL_IMPACT_CATEGORY: &[&str] = &["NUCLEAR_WASTE", "CARBON_DIOXIDE"];
const AUTH_METHOD: &[&str] = &["AUTH_REQUEST", "WHITELIST"];
const SESSION_STATUS: &[&str] = &["ACTIVE", "COMPLETED", "INVALID", "PENDING"];
const CDR_DIMENSION_TYPE: &[&str] = &[
    "ENERGY",
    "FLAT",
    "MAX_CURRENT",
    "MIN_CURRENT",
    "PARKING_TIME",
    "TIME",
];
const TARIFF_DIMENSION_TYPE: &[&str] = &["ENERGY", "FLAT", "PARKING_TIME", "TIME"];
const DAY_OF_WEEK: &[&str] = &[
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];
const TOKEN_TYPE: &[&str] = &["OTHER", "RFID"];
const WHITELIST_TYPE: &[&str] = &["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"];

static DISPLAY_TEXT: Schema = Schema {
    name: "DisplayText",
    fields: &[one("language", Str(2)), one("text", Str(512))],
    check: None,
};

static GEO_LOCATION: Schema = Schema {
    name: "GeoLocation",
    fields: &[one("latitude", Str(10)), one("longitude", Str(11))],
    check: None,
};

static ADDITIONAL_GEO_LOCATION: Schema = Schema {
    name: "AdditionalGeoLocation",
    fields: &[
        one("latitude", Str(10)),
        one("longitude", Str(11)),
        opt("name", Obj(&DISPLAY_TEXT)),
    ],
    check: None,
};

static IMAGE: Schema = Schema {
    name: "Image",
    fields: &[
        one("url", Url),
        opt("thumbnail", Url),
        one("category", Enum(IMAGE_CATEGORY)),
        one("type", Str(4)),
        opt("width", Int(5)),
        opt("height", Int(5)),
    ],
    check: None,
};

static BUSINESS_DETAILS: Schema = Schema {
    name: "BusinessDetails",
    fields: &[
        one("name", Str(100)),
        opt("website", Url),
        opt("logo", Obj(&IMAGE)),
    ],
    check: None,
};

static REGULAR_HOURS: Schema = Schema {
    name: "RegularHours",
    fields: &[
        one("weekday", Int(1)),
        one("period_begin", Str(5)),
        one("period_end", Str(5)),
    ],
    check: None,
};

static EXCEPTIONAL_PERIOD: Schema = Schema {
    name: "ExceptionalPeriod",
    fields: &[one("period_begin", DateTime), one("period_end", DateTime)],
    check: None,
};

/// Hours: regular_hours and twentyfourseven are a choice, one of the two (the table marks
/// twentyfourseven `1` inside the choice), so each is optional here and [`one_of_the_hours`]
/// requires exactly one.
static HOURS: Schema = Schema {
    name: "Hours",
    fields: &[
        many("regular_hours", Obj(&REGULAR_HOURS)),
        opt("twentyfourseven", Bool),
        many("exceptional_openings", Obj(&EXCEPTIONAL_PERIOD)),
        many("exceptional_closings", Obj(&EXCEPTIONAL_PERIOD)),
    ],
    check: Some(one_of_the_hours),
};

fn one_of_the_hours(hours: &Map<String, Value>) -> Result<(), Violation> {
    let present = |name: &str| hours.get(name).is_some_and(|v| !v.is_null());
    match (present("regular_hours"), present("twentyfourseven")) {
        (true, false) | (false, true) => Ok(()),
        (true, true) => Err(at_field(
            "twentyfourseven",
            "value_error.choice",
            "Hours is a choice: regular_hours or twentyfourseven, not both",
        )),
        (false, false) => Err(at_field(
            "twentyfourseven",
            "value_error.missing",
            "Hours is a choice: one of regular_hours and twentyfourseven is required",
        )),
    }
}

static ENERGY_SOURCE: Schema = Schema {
    name: "EnergySource",
    fields: &[
        one("source", Enum(ENERGY_SOURCE_CATEGORY)),
        one("percentage", Num),
    ],
    check: None,
};

static ENVIRONMENTAL_IMPACT: Schema = Schema {
    name: "EnvironmentalImpact",
    fields: &[
        one("source", Enum(ENVIRONMENTAL_IMPACT_CATEGORY)),
        one("amount", Num),
    ],
    check: None,
};

static ENERGY_MIX: Schema = Schema {
    name: "EnergyMix",
    fields: &[
        one("is_green_energy", Bool),
        many("energy_sources", Obj(&ENERGY_SOURCE)),
        many("environ_impact", Obj(&ENVIRONMENTAL_IMPACT)),
        opt("supplier_name", Str(64)),
        opt("energy_product_name", Str(64)),
    ],
    check: None,
};

static STATUS_SCHEDULE: Schema = Schema {
    name: "StatusSchedule",
    fields: &[
        one("period_begin", DateTime),
        opt("period_end", DateTime),
        one("status", Enum(STATUS)),
    ],
    check: None,
};

static CONNECTOR: Schema = Schema {
    name: "Connector",
    fields: &[
        one("id", Str(36)),
        one("standard", Enum(CONNECTOR_TYPE)),
        one("format", Enum(CONNECTOR_FORMAT)),
        one("power_type", Enum(POWER_TYPE)),
        one("voltage", Int(0)),
        one("amperage", Int(0)),
        opt("tariff_id", Str(36)),
        opt("terms_and_conditions", Url),
        one("last_updated", DateTime),
    ],
    check: None,
};

static EVSE: Schema = Schema {
    name: "EVSE",
    fields: &[
        one("uid", Str(39)),
        opt("evse_id", Str(48)),
        one("status", Enum(STATUS)),
        many("status_schedule", Obj(&STATUS_SCHEDULE)),
        many("capabilities", Enum(CAPABILITY)),
        at_least_one("connectors", Obj(&CONNECTOR)),
        opt("floor_level", Str(4)),
        opt("coordinates", Obj(&GEO_LOCATION)),
        opt("physical_reference", Str(16)),
        many("directions", Obj(&DISPLAY_TEXT)),
        many("parking_restrictions", Enum(PARKING_RESTRICTION)),
        many("images", Obj(&IMAGE)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static LOCATION: Schema = Schema {
    name: "Location",
    fields: &[
        one("id", Str(39)),
        one("type", Enum(LOCATION_TYPE)),
        opt("name", Str(255)),
        one("address", Str(45)),
        one("city", Str(45)),
        one("postal_code", Str(10)),
        one("country", Str(3)),
        one("coordinates", Obj(&GEO_LOCATION)),
        many("related_locations", Obj(&ADDITIONAL_GEO_LOCATION)),
        many("evses", Obj(&EVSE)),
        many("directions", Obj(&DISPLAY_TEXT)),
        opt("operator", Obj(&BUSINESS_DETAILS)),
        opt("suboperator", Obj(&BUSINESS_DETAILS)),
        opt("owner", Obj(&BUSINESS_DETAILS)),
        many("facilities", Enum(FACILITY)),
        opt("time_zone", Str(255)),
        opt("opening_times", Obj(&HOURS)),
        opt("charging_when_closed", Bool),
        many("images", Obj(&IMAGE)),
        opt("energy_mix", Obj(&ENERGY_MIX)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static CDR_DIMENSION: Schema = Schema {
    name: "CdrDimension",
    fields: &[one("type", Enum(CDR_DIMENSION_TYPE)), one("volume", Num)],
    check: None,
};

static CHARGING_PERIOD: Schema = Schema {
    name: "ChargingPeriod",
    fields: &[
        one("start_date_time", DateTime),
        at_least_one("dimensions", Obj(&CDR_DIMENSION)),
    ],
    check: None,
};

static SESSION: Schema = Schema {
    name: "Session",
    fields: &[
        one("id", Str(36)),
        one("start_datetime", DateTime),
        opt("end_datetime", DateTime),
        one("kwh", Num),
        one("auth_id", Str(36)),
        one("auth_method", Enum(AUTH_METHOD)),
        one("location", Obj(&LOCATION)),
        opt("meter_id", Str(255)),
        one("currency", Str(3)),
        many("charging_periods", Obj(&CHARGING_PERIOD)),
        opt("total_cost", Num),
        one("status", Enum(SESSION_STATUS)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static PRICE_COMPONENT: Schema = Schema {
    name: "PriceComponent",
    fields: &[
        one("type", Enum(TARIFF_DIMENSION_TYPE)),
        one("price", Num),
        one("step_size", Int(0)),
    ],
    check: None,
};

static TARIFF_RESTRICTIONS: Schema = Schema {
    name: "TariffRestrictions",
    fields: &[
        opt("start_time", Str(5)),
        opt("end_time", Str(5)),
        opt("start_date", Str(10)),
        opt("end_date", Str(10)),
        opt("min_kwh", Num),
        opt("max_kwh", Num),
        opt("min_power", Num),
        opt("max_power", Num),
        opt("min_duration", Int(0)),
        opt("max_duration", Int(0)),
        many("day_of_week", Enum(DAY_OF_WEEK)),
    ],
    check: None,
};

static TARIFF_ELEMENT: Schema = Schema {
    name: "TariffElement",
    fields: &[
        at_least_one("price_components", Obj(&PRICE_COMPONENT)),
        opt("restrictions", Obj(&TARIFF_RESTRICTIONS)),
    ],
    check: None,
};

static TARIFF: Schema = Schema {
    name: "Tariff",
    fields: &[
        one("id", Str(36)),
        one("currency", Str(3)),
        many("tariff_alt_text", Obj(&DISPLAY_TEXT)),
        opt("tariff_alt_url", Url),
        at_least_one("elements", Obj(&TARIFF_ELEMENT)),
        opt("energy_mix", Obj(&ENERGY_MIX)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static CDR: Schema = Schema {
    name: "CDR",
    fields: &[
        one("id", CiStr(36)),
        one("start_date_time", DateTime),
        one("stop_date_time", DateTime),
        one("auth_id", Str(36)),
        one("auth_method", Enum(AUTH_METHOD)),
        one("location", Obj(&LOCATION)),
        opt("meter_id", Str(255)),
        one("currency", Str(3)),
        many("tariffs", Obj(&TARIFF)),
        at_least_one("charging_periods", Obj(&CHARGING_PERIOD)),
        one("total_cost", Num),
        one("total_energy", Num),
        one("total_time", Num),
        opt("total_parking_time", Num),
        opt("remark", Str(255)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static TOKEN: Schema = Schema {
    name: "Token",
    fields: &[
        one("uid", Str(36)),
        one("type", Enum(TOKEN_TYPE)),
        one("auth_id", Str(36)),
        opt("visual_number", Str(64)),
        one("issuer", Str(64)),
        one("valid", Bool),
        one("whitelist", Enum(WHITELIST_TYPE)),
        opt("language", Str(2)),
        one("last_updated", DateTime),
    ],
    check: None,
};
