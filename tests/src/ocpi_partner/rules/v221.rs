//! The object tables of OCPI 2.2.1 (mod_locations, mod_sessions, mod_cdrs, mod_tariffs,
//! mod_tokens, types), as the double checks them. Objects carry country_code and party_id,
//! ids are CiString(36) (CDR 39), costs are `Price {excl_vat, incl_vat?}`, Sessions and CDRs
//! refer to the Location by ids (CDR: a CdrLocation) and name the token in a CdrToken.
//! Tables 2.3.0 did not change are shared with it from here.

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
    ascii_strings: false,
};

pub(super) const STATUS: &[&str] = &[
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
pub(super) const CAPABILITY: &[&str] = &[
    "CHARGING_PROFILE_CAPABLE",
    "CHARGING_PREFERENCES_CAPABLE",
    "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT",
    "CREDIT_CARD_PAYABLE",
    "DEBIT_CARD_PAYABLE",
    "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE",
    "UNLOCK_CAPABLE",
];
pub(super) const CONNECTOR_TYPE: &[&str] = &[
    "CHADEMO",
    "CHAOJI",
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
    "DOMESTIC_M",
    "DOMESTIC_N",
    "DOMESTIC_O",
    "GBT_AC",
    "GBT_DC",
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
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "TESLA_R",
    "TESLA_S",
];
pub(super) const CONNECTOR_FORMAT: &[&str] = &["SOCKET", "CABLE"];
pub(super) const POWER_TYPE: &[&str] = &[
    "AC_1_PHASE",
    "AC_2_PHASE",
    "AC_2_PHASE_SPLIT",
    "AC_3_PHASE",
    "DC",
];
pub(super) const PARKING_TYPE: &[&str] = &[
    "ALONG_MOTORWAY",
    "PARKING_GARAGE",
    "PARKING_LOT",
    "ON_DRIVEWAY",
    "ON_STREET",
    "UNDERGROUND_GARAGE",
];
pub(super) const FACILITY: &[&str] = &[
    "HOTEL",
    "RESTAURANT",
    "CAFE",
    "MALL",
    "SUPERMARKET",
    "SPORT",
    "RECREATION_AREA",
    "NATURE",
    "MUSEUM",
    "BIKE_SHARING",
    "BUS_STOP",
    "TAXI_STAND",
    "TRAM_STOP",
    "METRO_STATION",
    "TRAIN_STATION",
    "AIRPORT",
    "PARKING_LOT",
    "CARPOOL_PARKING",
    "FUEL_STATION",
    "WIFI",
];
const PARKING_RESTRICTION: &[&str] =
    &["EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"];
pub(super) const IMAGE_CATEGORY: &[&str] = &[
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
pub(super) const ENVIRONMENTAL_IMPACT_CATEGORY: &[&str] = &["NUCLEAR_WASTE", "CARBON_DIOXIDE"];
pub(super) const AUTH_METHOD: &[&str] = &["AUTH_REQUEST", "COMMAND", "WHITELIST"];
pub(super) const SESSION_STATUS: &[&str] =
    &["ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"];
const CDR_DIMENSION_TYPE: &[&str] = &[
    "CURRENT",
    "ENERGY",
    "ENERGY_EXPORT",
    "ENERGY_IMPORT",
    "MAX_CURRENT",
    "MIN_CURRENT",
    "MAX_POWER",
    "MIN_POWER",
    "PARKING_TIME",
    "POWER",
    "RESERVATION_TIME",
    "STATE_OF_CHARGE",
    "TIME",
];
pub(super) const TARIFF_DIMENSION_TYPE: &[&str] = &["ENERGY", "FLAT", "PARKING_TIME", "TIME"];
pub(super) const TARIFF_TYPE: &[&str] = &[
    "AD_HOC_PAYMENT",
    "PROFILE_CHEAP",
    "PROFILE_FAST",
    "PROFILE_GREEN",
    "REGULAR",
];
const DAY_OF_WEEK: &[&str] = &[
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];
const RESERVATION_RESTRICTION_TYPE: &[&str] = &["RESERVATION", "RESERVATION_EXPIRES"];
pub(super) const TOKEN_TYPE: &[&str] = &["AD_HOC_USER", "APP_USER", "OTHER", "RFID"];
pub(super) const WHITELIST_TYPE: &[&str] = &["ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"];
pub(super) const PROFILE_TYPE: &[&str] = &["CHEAP", "FAST", "GREEN", "REGULAR"];

pub(super) static DISPLAY_TEXT: Schema = Schema {
    name: "DisplayText",
    fields: &[one("language", Str(2)), one("text", Str(512))],
    check: None,
};

pub(super) static GEO_LOCATION: Schema = Schema {
    name: "GeoLocation",
    fields: &[one("latitude", Str(10)), one("longitude", Str(11))],
    check: None,
};

pub(super) static ADDITIONAL_GEO_LOCATION: Schema = Schema {
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
        one("type", CiStr(4)),
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

static PUBLISH_TOKEN_TYPE: Schema = Schema {
    name: "PublishTokenType",
    fields: &[
        opt("uid", CiStr(36)),
        opt("type", Enum(TOKEN_TYPE)),
        opt("visual_number", Str(64)),
        opt("issuer", Str(64)),
        opt("group_id", CiStr(36)),
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

pub(super) static HOURS: Schema = Schema {
    name: "Hours",
    fields: &[
        one("twentyfourseven", Bool),
        many("regular_hours", Obj(&REGULAR_HOURS)),
        many("exceptional_openings", Obj(&EXCEPTIONAL_PERIOD)),
        many("exceptional_closings", Obj(&EXCEPTIONAL_PERIOD)),
    ],
    check: None,
};

pub(super) static ENERGY_SOURCE: Schema = Schema {
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
        one("category", Enum(ENVIRONMENTAL_IMPACT_CATEGORY)),
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

pub(super) static STATUS_SCHEDULE: Schema = Schema {
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
        one("id", CiStr(36)),
        one("standard", Enum(CONNECTOR_TYPE)),
        one("format", Enum(CONNECTOR_FORMAT)),
        one("power_type", Enum(POWER_TYPE)),
        one("max_voltage", Int(0)),
        one("max_amperage", Int(0)),
        opt("max_electric_power", Int(0)),
        many("tariff_ids", CiStr(36)),
        opt("terms_and_conditions", Url),
        one("last_updated", DateTime),
    ],
    check: None,
};

static EVSE: Schema = Schema {
    name: "EVSE",
    fields: &[
        one("uid", CiStr(36)),
        opt("evse_id", CiStr(48)),
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
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("id", CiStr(36)),
        one("publish", Bool),
        many("publish_allowed_to", Obj(&PUBLISH_TOKEN_TYPE)),
        opt("name", Str(255)),
        one("address", Str(45)),
        one("city", Str(45)),
        opt("postal_code", Str(10)),
        opt("state", Str(20)),
        one("country", Str(3)),
        one("coordinates", Obj(&GEO_LOCATION)),
        many("related_locations", Obj(&ADDITIONAL_GEO_LOCATION)),
        opt("parking_type", Enum(PARKING_TYPE)),
        many("evses", Obj(&EVSE)),
        many("directions", Obj(&DISPLAY_TEXT)),
        opt("operator", Obj(&BUSINESS_DETAILS)),
        opt("suboperator", Obj(&BUSINESS_DETAILS)),
        opt("owner", Obj(&BUSINESS_DETAILS)),
        many("facilities", Enum(FACILITY)),
        one("time_zone", Str(255)),
        opt("opening_times", Obj(&HOURS)),
        opt("charging_when_closed", Bool),
        many("images", Obj(&IMAGE)),
        opt("energy_mix", Obj(&ENERGY_MIX)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static PRICE: Schema = Schema {
    name: "Price",
    fields: &[one("excl_vat", Num), opt("incl_vat", Num)],
    check: None,
};

static CDR_TOKEN: Schema = Schema {
    name: "CdrToken",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("uid", CiStr(36)),
        one("type", Enum(TOKEN_TYPE)),
        one("contract_id", CiStr(36)),
    ],
    check: None,
};

static CDR_DIMENSION: Schema = Schema {
    name: "CdrDimension",
    fields: &[one("type", Enum(CDR_DIMENSION_TYPE)), one("volume", Num)],
    check: None,
};

pub(super) static CHARGING_PERIOD: Schema = Schema {
    name: "ChargingPeriod",
    fields: &[
        one("start_date_time", DateTime),
        at_least_one("dimensions", Obj(&CDR_DIMENSION)),
        opt("tariff_id", CiStr(36)),
    ],
    check: None,
};

static SESSION: Schema = Schema {
    name: "Session",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("id", CiStr(36)),
        one("start_date_time", DateTime),
        opt("end_date_time", DateTime),
        one("kwh", Num),
        one("cdr_token", Obj(&CDR_TOKEN)),
        one("auth_method", Enum(AUTH_METHOD)),
        opt("authorization_reference", CiStr(36)),
        one("location_id", CiStr(36)),
        one("evse_uid", CiStr(36)),
        one("connector_id", CiStr(36)),
        opt("meter_id", Str(255)),
        one("currency", Str(3)),
        many("charging_periods", Obj(&CHARGING_PERIOD)),
        opt("total_cost", Obj(&PRICE)),
        one("status", Enum(SESSION_STATUS)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static CDR_LOCATION: Schema = Schema {
    name: "CdrLocation",
    fields: &[
        one("id", CiStr(36)),
        opt("name", Str(255)),
        one("address", Str(45)),
        one("city", Str(45)),
        opt("postal_code", Str(10)),
        opt("state", Str(20)),
        one("country", Str(3)),
        one("coordinates", Obj(&GEO_LOCATION)),
        one("evse_uid", CiStr(36)),
        one("evse_id", CiStr(48)),
        one("connector_id", CiStr(36)),
        one("connector_standard", Enum(CONNECTOR_TYPE)),
        one("connector_format", Enum(CONNECTOR_FORMAT)),
        one("connector_power_type", Enum(POWER_TYPE)),
    ],
    check: None,
};

static SIGNED_VALUE: Schema = Schema {
    name: "SignedValue",
    fields: &[
        one("nature", CiStr(32)),
        one("plain_data", Str(512)),
        one("signed_data", Str(5000)),
    ],
    check: None,
};

static SIGNED_DATA: Schema = Schema {
    name: "SignedData",
    fields: &[
        one("encoding_method", CiStr(36)),
        opt("encoding_method_version", Int(0)),
        opt("public_key", Str(512)),
        at_least_one("signed_values", Obj(&SIGNED_VALUE)),
        opt("url", Str(512)),
    ],
    check: None,
};

static PRICE_COMPONENT: Schema = Schema {
    name: "PriceComponent",
    fields: &[
        one("type", Enum(TARIFF_DIMENSION_TYPE)),
        one("price", Num),
        opt("vat", Num),
        one("step_size", Int(0)),
    ],
    check: None,
};

pub(super) static TARIFF_RESTRICTIONS: Schema = Schema {
    name: "TariffRestrictions",
    fields: &[
        opt("start_time", Str(5)),
        opt("end_time", Str(5)),
        opt("start_date", Str(10)),
        opt("end_date", Str(10)),
        opt("min_kwh", Num),
        opt("max_kwh", Num),
        opt("min_current", Num),
        opt("max_current", Num),
        opt("min_power", Num),
        opt("max_power", Num),
        opt("min_duration", Int(0)),
        opt("max_duration", Int(0)),
        many("day_of_week", Enum(DAY_OF_WEEK)),
        opt("reservation", Enum(RESERVATION_RESTRICTION_TYPE)),
    ],
    check: None,
};

pub(super) static TARIFF_ELEMENT: Schema = Schema {
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
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("id", CiStr(36)),
        one("currency", Str(3)),
        opt("type", Enum(TARIFF_TYPE)),
        many("tariff_alt_text", Obj(&DISPLAY_TEXT)),
        opt("tariff_alt_url", Url),
        opt("min_price", Obj(&PRICE)),
        opt("max_price", Obj(&PRICE)),
        at_least_one("elements", Obj(&TARIFF_ELEMENT)),
        opt("start_date_time", DateTime),
        opt("end_date_time", DateTime),
        opt("energy_mix", Obj(&ENERGY_MIX)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static CDR: Schema = Schema {
    name: "CDR",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("id", CiStr(39)),
        one("start_date_time", DateTime),
        one("end_date_time", DateTime),
        opt("session_id", CiStr(36)),
        one("cdr_token", Obj(&CDR_TOKEN)),
        one("auth_method", Enum(AUTH_METHOD)),
        opt("authorization_reference", CiStr(36)),
        one("cdr_location", Obj(&CDR_LOCATION)),
        opt("meter_id", Str(255)),
        one("currency", Str(3)),
        many("tariffs", Obj(&TARIFF)),
        at_least_one("charging_periods", Obj(&CHARGING_PERIOD)),
        opt("signed_data", Obj(&SIGNED_DATA)),
        one("total_cost", Obj(&PRICE)),
        opt("total_fixed_cost", Obj(&PRICE)),
        one("total_energy", Num),
        opt("total_energy_cost", Obj(&PRICE)),
        one("total_time", Num),
        opt("total_time_cost", Obj(&PRICE)),
        opt("total_parking_time", Num),
        opt("total_parking_cost", Obj(&PRICE)),
        opt("total_reservation_cost", Obj(&PRICE)),
        opt("remark", Str(255)),
        opt("invoice_reference_id", CiStr(39)),
        opt("credit", Bool),
        opt("credit_reference_id", CiStr(39)),
        opt("home_charging_compensation", Bool),
        one("last_updated", DateTime),
    ],
    check: Some(credit_names_its_reference),
};

/// "credit_reference_id: is required to be set for a Credit CDR" (2.2.1 and 2.3.0).
pub(super) fn credit_names_its_reference(cdr: &Map<String, Value>) -> Result<(), Violation> {
    let credit = cdr.get("credit").and_then(Value::as_bool) == Some(true);
    let reference = cdr.get("credit_reference_id").is_some_and(|v| !v.is_null());
    if credit && !reference {
        return Err(at_field(
            "credit_reference_id",
            "value_error.missing",
            "field required for a Credit CDR (credit: true)",
        ));
    }
    Ok(())
}

pub(super) static ENERGY_CONTRACT: Schema = Schema {
    name: "EnergyContract",
    fields: &[one("supplier_name", Str(64)), opt("contract_id", Str(64))],
    check: None,
};

static TOKEN: Schema = Schema {
    name: "Token",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("uid", CiStr(36)),
        one("type", Enum(TOKEN_TYPE)),
        one("contract_id", CiStr(36)),
        opt("visual_number", Str(64)),
        one("issuer", Str(64)),
        opt("group_id", CiStr(36)),
        one("valid", Bool),
        one("whitelist", Enum(WHITELIST_TYPE)),
        opt("language", Str(2)),
        opt("default_profile_type", Enum(PROFILE_TYPE)),
        opt("energy_contract", Obj(&ENERGY_CONTRACT)),
        one("last_updated", DateTime),
    ],
    check: None,
};
