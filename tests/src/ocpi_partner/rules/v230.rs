//! The object tables of OCPI 2.3.0 (branch 2.3.0/release/core of the specification), as the
//! double checks them: 2.2.1 with these changes. Costs are `Price {before_taxes, taxes?}` with
//! TaxAmount entries, Tariff min/max are a PriceLimit and `tax_included` is required (an enum
//! YES/NO/N/A, not a boolean); Locations gain parking_places and help_phone, EVSEs parking and
//! accepted_service_providers, Connectors capabilities; address is string(255). Many enums
//! became OpenEnums (any string is accepted for them), and unknown fields are accepted: "an
//! OCPI Platform SHALL NOT reject ... payloads based on the presence of ... field names that are
//! not documented". Tables 2.3.0 did not change come from the 2.2.1 file.

use super::v221;
use super::Ty::{Bool, CiStr, DateTime, Enum, Int, Num, Obj, OpenEnum, Str, Url};
use super::{at_least_one, many, one, opt, Schema, VersionRules};

pub(super) static RULES: VersionRules = VersionRules {
    location: &LOCATION,
    evse: &EVSE,
    connector: &CONNECTOR,
    session: &SESSION,
    cdr: &CDR,
    tariff: &TARIFF,
    token: &TOKEN,
    refuse_unknown_fields: false,
    ascii_strings: false,
};

const CONNECTOR_TYPE: &[&str] = &[
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
    "MCS",
    "NEMA_5_20",
    "NEMA_6_30",
    "NEMA_6_50",
    "NEMA_10_30",
    "NEMA_10_50",
    "NEMA_14_30",
    "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP",
    "PANTOGRAPH_TOP_DOWN",
    "SAE_J3400",
    "TESLA_R",
    "TESLA_S",
];
const CONNECTOR_CAPABILITY: &[&str] = &[
    "ISO_15118_2_PLUG_AND_CHARGE",
    "ISO_15118_20_PLUG_AND_CHARGE",
];
const PARKING_RESTRICTION: &[&str] = &[
    "CUSTOMERS",
    "DISABLED",
    "EMPLOYEES",
    "EV_ONLY",
    "MOTORCYCLES",
    "PLUGGED",
    "TAXIS",
    "TENANTS",
];
const VEHICLE_TYPE: &[&str] = &[
    "MOTORCYCLE",
    "PERSONAL_VEHICLE",
    "PERSONAL_VEHICLE_WITH_TRAILER",
    "VAN",
    "SEMI_TRACTOR",
    "RIGID",
    "TRUCK_WITH_TRAILER",
    "BUS",
    "DISABLED",
];
const PARKING_DIRECTION: &[&str] = &["PARALLEL", "PERPENDICULAR", "ANGLE"];
const EVSE_POSITION: &[&str] = &["LEFT", "RIGHT", "CENTER"];
const TOKEN_TYPE: &[&str] = &["AD_HOC_USER", "APP_USER", "EMAID", "OTHER", "RFID"];
const TAX_INCLUDED: &[&str] = &["YES", "NO", "N/A"];

static PARKING: Schema = Schema {
    name: "Parking",
    fields: &[
        one("id", CiStr(36)),
        opt("physical_reference", Str(12)),
        at_least_one("vehicle_types", OpenEnum(VEHICLE_TYPE)),
        opt("max_vehicle_weight", Num),
        opt("max_vehicle_height", Num),
        opt("max_vehicle_length", Num),
        opt("max_vehicle_width", Num),
        opt("parking_space_length", Num),
        opt("parking_space_width", Num),
        opt("dangerous_goods_allowed", Bool),
        opt("direction", Enum(PARKING_DIRECTION)),
        opt("drive_through", Bool),
        one("restricted_to_type", Bool),
        one("reservation_required", Bool),
        opt("time_limit", Num),
        opt("roofed", Bool),
        many("images", Obj(&IMAGE)),
        opt("lighting", Bool),
        opt("refrigeration_outlet", Bool),
        many("standards", CiStr(36)),
        opt("apds_reference", CiStr(0)),
    ],
    check: None,
};

static EVSE_PARKING: Schema = Schema {
    name: "EVSEParking",
    fields: &[
        one("parking_id", CiStr(36)),
        opt("evse_position", Enum(EVSE_POSITION)),
    ],
    check: None,
};

static IMAGE: Schema = Schema {
    name: "Image",
    fields: &[
        one("url", Url),
        opt("thumbnail", Url),
        one("category", OpenEnum(v221::IMAGE_CATEGORY)),
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
        opt("type", OpenEnum(TOKEN_TYPE)),
        opt("visual_number", Str(64)),
        opt("issuer", Str(64)),
        opt("group_id", CiStr(36)),
    ],
    check: None,
};

static ENVIRONMENTAL_IMPACT: Schema = Schema {
    name: "EnvironmentalImpact",
    fields: &[
        one("category", OpenEnum(v221::ENVIRONMENTAL_IMPACT_CATEGORY)),
        one("amount", Num),
    ],
    check: None,
};

static ENERGY_MIX: Schema = Schema {
    name: "EnergyMix",
    fields: &[
        one("is_green_energy", Bool),
        many("energy_sources", Obj(&v221::ENERGY_SOURCE)),
        many("environ_impact", Obj(&ENVIRONMENTAL_IMPACT)),
        opt("supplier_name", Str(64)),
        opt("energy_product_name", Str(64)),
    ],
    check: None,
};

static CONNECTOR: Schema = Schema {
    name: "Connector",
    fields: &[
        one("id", CiStr(36)),
        one("standard", OpenEnum(CONNECTOR_TYPE)),
        one("format", Enum(v221::CONNECTOR_FORMAT)),
        one("power_type", Enum(v221::POWER_TYPE)),
        one("max_voltage", Int(0)),
        one("max_amperage", Int(0)),
        opt("max_electric_power", Int(0)),
        many("tariff_ids", CiStr(36)),
        many("capabilities", OpenEnum(CONNECTOR_CAPABILITY)),
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
        one("status", Enum(v221::STATUS)),
        many("status_schedule", Obj(&v221::STATUS_SCHEDULE)),
        many("capabilities", OpenEnum(v221::CAPABILITY)),
        at_least_one("connectors", Obj(&CONNECTOR)),
        opt("floor_level", Str(4)),
        opt("coordinates", Obj(&v221::GEO_LOCATION)),
        opt("physical_reference", Str(16)),
        many("directions", Obj(&v221::DISPLAY_TEXT)),
        many("parking_restrictions", OpenEnum(PARKING_RESTRICTION)),
        many("parking", Obj(&EVSE_PARKING)),
        many("images", Obj(&IMAGE)),
        many("accepted_service_providers", Str(50)),
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
        one("address", Str(255)),
        one("city", Str(45)),
        opt("postal_code", Str(10)),
        opt("state", Str(45)),
        one("country", Str(3)),
        one("coordinates", Obj(&v221::GEO_LOCATION)),
        many("related_locations", Obj(&v221::ADDITIONAL_GEO_LOCATION)),
        opt("parking_type", OpenEnum(v221::PARKING_TYPE)),
        many("parking_places", Obj(&PARKING)),
        many("evses", Obj(&EVSE)),
        many("directions", Obj(&v221::DISPLAY_TEXT)),
        opt("operator", Obj(&BUSINESS_DETAILS)),
        opt("suboperator", Obj(&BUSINESS_DETAILS)),
        opt("owner", Obj(&BUSINESS_DETAILS)),
        many("facilities", OpenEnum(v221::FACILITY)),
        one("time_zone", Str(255)),
        opt("help_phone", CiStr(25)),
        opt("opening_times", Obj(&v221::HOURS)),
        opt("charging_when_closed", Bool),
        many("images", Obj(&IMAGE)),
        opt("energy_mix", Obj(&ENERGY_MIX)),
        one("last_updated", DateTime),
    ],
    check: None,
};

static TAX_AMOUNT: Schema = Schema {
    name: "TaxAmount",
    fields: &[
        one("name", Str(0)),
        opt("account_number", Str(0)),
        opt("percentage", Num),
        one("amount", Num),
    ],
    check: None,
};

static PRICE: Schema = Schema {
    name: "Price",
    fields: &[one("before_taxes", Num), many("taxes", Obj(&TAX_AMOUNT))],
    check: None,
};

static PRICE_LIMIT: Schema = Schema {
    name: "PriceLimit",
    fields: &[one("before_taxes", Num), opt("after_taxes", Num)],
    check: None,
};

static CDR_TOKEN: Schema = Schema {
    name: "CdrToken",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("uid", CiStr(36)),
        one("type", OpenEnum(TOKEN_TYPE)),
        one("contract_id", CiStr(36)),
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
        one("auth_method", Enum(v221::AUTH_METHOD)),
        opt("authorization_reference", CiStr(36)),
        one("location_id", CiStr(36)),
        one("evse_uid", CiStr(36)),
        one("connector_id", CiStr(36)),
        opt("meter_id", Str(255)),
        one("currency", Str(3)),
        many("charging_periods", Obj(&v221::CHARGING_PERIOD)),
        opt("total_cost", Obj(&PRICE)),
        one("status", Enum(v221::SESSION_STATUS)),
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
        one("coordinates", Obj(&v221::GEO_LOCATION)),
        one("evse_uid", CiStr(36)),
        one("evse_id", CiStr(48)),
        one("connector_id", CiStr(36)),
        one("connector_standard", OpenEnum(CONNECTOR_TYPE)),
        one("connector_format", Enum(v221::CONNECTOR_FORMAT)),
        one("connector_power_type", Enum(v221::POWER_TYPE)),
    ],
    check: None,
};

static SIGNED_VALUE: Schema = Schema {
    name: "SignedValue",
    fields: &[
        one("nature", CiStr(32)),
        one("plain_data", Str(5000)),
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

static TARIFF: Schema = Schema {
    name: "Tariff",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("id", CiStr(36)),
        one("currency", Str(3)),
        opt("type", Enum(v221::TARIFF_TYPE)),
        many("tariff_alt_text", Obj(&v221::DISPLAY_TEXT)),
        opt("tariff_alt_url", Url),
        opt("min_price", Obj(&PRICE_LIMIT)),
        opt("max_price", Obj(&PRICE_LIMIT)),
        one("tax_included", Enum(TAX_INCLUDED)),
        at_least_one("elements", Obj(&v221::TARIFF_ELEMENT)),
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
        one("auth_method", Enum(v221::AUTH_METHOD)),
        opt("authorization_reference", CiStr(36)),
        one("cdr_location", Obj(&CDR_LOCATION)),
        opt("meter_id", Str(255)),
        one("currency", Str(3)),
        many("tariffs", Obj(&TARIFF)),
        at_least_one("charging_periods", Obj(&v221::CHARGING_PERIOD)),
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
    check: Some(v221::credit_names_its_reference),
};

static TOKEN: Schema = Schema {
    name: "Token",
    fields: &[
        one("country_code", CiStr(2)),
        one("party_id", CiStr(3)),
        one("uid", CiStr(36)),
        one("type", OpenEnum(TOKEN_TYPE)),
        one("contract_id", CiStr(36)),
        opt("visual_number", Str(64)),
        one("issuer", Str(64)),
        opt("group_id", CiStr(36)),
        one("valid", Bool),
        one("whitelist", Enum(v221::WHITELIST_TYPE)),
        opt("language", Str(2)),
        opt("default_profile_type", Enum(v221::PROFILE_TYPE)),
        opt("energy_contract", Obj(&v221::ENERGY_CONTRACT)),
        one("last_updated", DateTime),
    ],
    check: None,
};
