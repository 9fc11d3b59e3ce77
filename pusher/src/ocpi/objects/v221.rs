// Why this file exists: the OCPI 2.2.1 object definitions as rule tables, in the spec's field
// order. Against 2.1.1: objects carry country_code/party_id, ids are CiString(36) (CDR 39),
// Sessions and CDRs reference the Location by ids (CdrLocation) and the driver by a CdrToken,
// costs are a Price {excl_vat, incl_vat}. Classes 2.1.1 already had unchanged come from there;
// classes 2.3.0 kept unchanged are `pub(super)` and reused by its table.

use super::v211::{
    ADDITIONAL_GEO_LOCATION, CONNECTOR_FORMAT, DAY_OF_WEEK, DISPLAY_TEXT, ENERGY_SOURCE,
    ENVIRONMENTAL_IMPACT_CATEGORY, EXCEPTIONAL_PERIOD, GEO_LOCATION, IMAGE_CATEGORY,
    PARKING_RESTRICTION, REGULAR_HOURS, STATUS, STATUS_SCHEDULE, TARIFF_DIMENSION_TYPE,
    WHITELIST_TYPE,
};
use super::FieldKind::{Boolean, CiText, DateTime, Enum, Integer, Number, Object, Text, Url};
use super::{many, one, opt, some, EnumDef, ObjectDef};
use crate::mapping::ObjectKind;

pub(super) fn object(object: ObjectKind) -> &'static ObjectDef {
    match object {
        ObjectKind::Location => &LOCATION,
        ObjectKind::Evse => &EVSE,
        ObjectKind::Connector => &CONNECTOR,
        ObjectKind::Session => &SESSION,
        ObjectKind::Cdr => &CDR,
        ObjectKind::Tariff => &TARIFF,
        ObjectKind::Token => &TOKEN,
    }
}

// ---- Locations

static LOCATION: ObjectDef = class! { "Location", [
    one("country_code", CiText(2)),
    one("party_id", CiText(3)),
    one("id", CiText(36)),
    one("publish", Boolean),
    many("publish_allowed_to", Object(&PUBLISH_TOKEN_TYPE)),
    opt("name", Text(255)),
    one("address", Text(45)),
    one("city", Text(45)),
    opt("postal_code", Text(10)),
    opt("state", Text(20)),
    one("country", Text(3)),
    one("coordinates", Object(&GEO_LOCATION)),
    many("related_locations", Object(&ADDITIONAL_GEO_LOCATION)),
    opt("parking_type", Enum(&PARKING_TYPE)),
    many("evses", Object(&EVSE)),
    many("directions", Object(&DISPLAY_TEXT)),
    opt("operator", Object(&BUSINESS_DETAILS)),
    opt("suboperator", Object(&BUSINESS_DETAILS)),
    opt("owner", Object(&BUSINESS_DETAILS)),
    many("facilities", Enum(&FACILITY)),
    one("time_zone", Text(255)),
    opt("opening_times", Object(&HOURS)),
    opt("charging_when_closed", Boolean),
    many("images", Object(&IMAGE)),
    opt("energy_mix", Object(&ENERGY_MIX)),
    one("last_updated", DateTime),
] };

static EVSE: ObjectDef = class! { "EVSE", [
    one("uid", CiText(36)),
    opt("evse_id", CiText(48)),
    one("status", Enum(&STATUS)),
    many("status_schedule", Object(&STATUS_SCHEDULE)),
    many("capabilities", Enum(&CAPABILITY)),
    some("connectors", Object(&CONNECTOR)),
    opt("floor_level", Text(4)),
    opt("coordinates", Object(&GEO_LOCATION)),
    opt("physical_reference", Text(16)),
    many("directions", Object(&DISPLAY_TEXT)),
    many("parking_restrictions", Enum(&PARKING_RESTRICTION)),
    many("images", Object(&IMAGE)),
    one("last_updated", DateTime),
] };

static CONNECTOR: ObjectDef = class! { "Connector", [
    one("id", CiText(36)),
    one("standard", Enum(&CONNECTOR_TYPE)),
    one("format", Enum(&CONNECTOR_FORMAT)),
    one("power_type", Enum(&POWER_TYPE)),
    one("max_voltage", Integer(0)),
    one("max_amperage", Integer(0)),
    opt("max_electric_power", Integer(0)),
    many("tariff_ids", CiText(36)),
    opt("terms_and_conditions", Url),
    one("last_updated", DateTime),
] };

static PUBLISH_TOKEN_TYPE: ObjectDef = class! { "PublishTokenType", [
    opt("uid", CiText(36)),
    opt("type", Enum(&TOKEN_TYPE)),
    opt("visual_number", Text(64)),
    opt("issuer", Text(64)),
    opt("group_id", CiText(36)),
] };

static BUSINESS_DETAILS: ObjectDef = class! { "BusinessDetails", [
    one("name", Text(100)),
    opt("website", Url),
    opt("logo", Object(&IMAGE)),
] };

static IMAGE: ObjectDef = class! { "Image", [
    one("url", Url),
    opt("thumbnail", Url),
    one("category", Enum(&IMAGE_CATEGORY)),
    one("type", CiText(4)),
    opt("width", Integer(5)),
    opt("height", Integer(5)),
] };

/// 2.2.1 Hours: `twentyfourseven` is required (2.1.1: a choice with `regular_hours`).
pub(super) static HOURS: ObjectDef = class! { "Hours", [
    one("twentyfourseven", Boolean),
    many("regular_hours", Object(&REGULAR_HOURS)),
    many("exceptional_openings", Object(&EXCEPTIONAL_PERIOD)),
    many("exceptional_closings", Object(&EXCEPTIONAL_PERIOD)),
] };

static ENERGY_MIX: ObjectDef = class! { "EnergyMix", [
    one("is_green_energy", Boolean),
    many("energy_sources", Object(&ENERGY_SOURCE)),
    many("environ_impact", Object(&ENVIRONMENTAL_IMPACT)),
    opt("supplier_name", Text(64)),
    opt("energy_product_name", Text(64)),
] };

static ENVIRONMENTAL_IMPACT: ObjectDef = class! { "EnvironmentalImpact", [
    one("category", Enum(&ENVIRONMENTAL_IMPACT_CATEGORY)),
    one("amount", Number),
] };

static CAPABILITY: EnumDef = closed_enum! { "Capability", [
    "CHARGING_PROFILE_CAPABLE", "CHARGING_PREFERENCES_CAPABLE", "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT", "CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER", "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE", "UNLOCK_CAPABLE",
] };

static CONNECTOR_TYPE: EnumDef = closed_enum! { "ConnectorType", [
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E",
    "DOMESTIC_F", "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K",
    "DOMESTIC_L", "DOMESTIC_M", "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC",
    "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64",
    "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A",
    "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50",
    "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S",
] };

pub(super) static POWER_TYPE: EnumDef = closed_enum! { "PowerType", [
    "AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC",
] };

static FACILITY: EnumDef = closed_enum! { "Facility", [
    "HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE",
    "MUSEUM", "BIKE_SHARING", "BUS_STOP", "TAXI_STAND", "TRAM_STOP", "METRO_STATION",
    "TRAIN_STATION", "AIRPORT", "PARKING_LOT", "CARPOOL_PARKING", "FUEL_STATION", "WIFI",
] };

static PARKING_TYPE: EnumDef = closed_enum! { "ParkingType", [
    "ALONG_MOTORWAY", "PARKING_GARAGE", "PARKING_LOT", "ON_DRIVEWAY", "ON_STREET",
    "UNDERGROUND_GARAGE",
] };

// ---- Sessions and CDRs

static SESSION: ObjectDef = class! { "Session", [
    one("country_code", CiText(2)),
    one("party_id", CiText(3)),
    one("id", CiText(36)),
    one("start_date_time", DateTime),
    opt("end_date_time", DateTime),
    one("kwh", Number),
    one("cdr_token", Object(&CDR_TOKEN)),
    one("auth_method", Enum(&AUTH_METHOD)),
    opt("authorization_reference", CiText(36)),
    one("location_id", CiText(36)),
    one("evse_uid", CiText(36)),
    one("connector_id", CiText(36)),
    opt("meter_id", Text(255)),
    one("currency", Text(3)),
    many("charging_periods", Object(&CHARGING_PERIOD)),
    opt("total_cost", Object(&PRICE)),
    one("status", Enum(&SESSION_STATUS)),
    one("last_updated", DateTime),
] };

static CDR: ObjectDef = class! { "CDR", [
    one("country_code", CiText(2)),
    one("party_id", CiText(3)),
    one("id", CiText(39)),
    one("start_date_time", DateTime),
    one("end_date_time", DateTime),
    opt("session_id", CiText(36)),
    one("cdr_token", Object(&CDR_TOKEN)),
    one("auth_method", Enum(&AUTH_METHOD)),
    opt("authorization_reference", CiText(36)),
    one("cdr_location", Object(&CDR_LOCATION)),
    opt("meter_id", Text(255)),
    one("currency", Text(3)),
    many("tariffs", Object(&TARIFF)),
    some("charging_periods", Object(&CHARGING_PERIOD)),
    opt("signed_data", Object(&SIGNED_DATA)),
    one("total_cost", Object(&PRICE)),
    opt("total_fixed_cost", Object(&PRICE)),
    one("total_energy", Number),
    opt("total_energy_cost", Object(&PRICE)),
    one("total_time", Number),
    opt("total_time_cost", Object(&PRICE)),
    opt("total_parking_time", Number),
    opt("total_parking_cost", Object(&PRICE)),
    opt("total_reservation_cost", Object(&PRICE)),
    opt("remark", Text(255)),
    opt("invoice_reference_id", CiText(39)),
    opt("credit", Boolean),
    opt("credit_reference_id", CiText(39)),
    opt("home_charging_compensation", Boolean),
    one("last_updated", DateTime),
] };

static CDR_TOKEN: ObjectDef = class! { "CdrToken", [
    one("country_code", CiText(2)),
    one("party_id", CiText(3)),
    one("uid", CiText(36)),
    one("type", Enum(&TOKEN_TYPE)),
    one("contract_id", CiText(36)),
] };

static CDR_LOCATION: ObjectDef = class! { "CdrLocation", [
    one("id", CiText(36)),
    opt("name", Text(255)),
    one("address", Text(45)),
    one("city", Text(45)),
    opt("postal_code", Text(10)),
    opt("state", Text(20)),
    one("country", Text(3)),
    one("coordinates", Object(&GEO_LOCATION)),
    one("evse_uid", CiText(36)),
    one("evse_id", CiText(48)),
    one("connector_id", CiText(36)),
    one("connector_standard", Enum(&CONNECTOR_TYPE)),
    one("connector_format", Enum(&CONNECTOR_FORMAT)),
    one("connector_power_type", Enum(&POWER_TYPE)),
] };

/// Unchanged in 2.3.0.
pub(super) static CHARGING_PERIOD: ObjectDef = class! { "ChargingPeriod", [
    one("start_date_time", DateTime),
    some("dimensions", Object(&CDR_DIMENSION)),
    opt("tariff_id", CiText(36)),
] };

static CDR_DIMENSION: ObjectDef = class! { "CdrDimension", [
    one("type", Enum(&CDR_DIMENSION_TYPE)),
    one("volume", Number),
] };

static SIGNED_DATA: ObjectDef = class! { "SignedData", [
    one("encoding_method", CiText(36)),
    opt("encoding_method_version", Integer(0)),
    opt("public_key", Text(512)),
    some("signed_values", Object(&SIGNED_VALUE)),
    opt("url", Text(512)),
] };

static SIGNED_VALUE: ObjectDef = class! { "SignedValue", [
    one("nature", CiText(32)),
    one("plain_data", Text(512)),
    one("signed_data", Text(5000)),
] };

static PRICE: ObjectDef = class! { "Price", [one("excl_vat", Number), opt("incl_vat", Number),] };

pub(super) static AUTH_METHOD: EnumDef = closed_enum! { "AuthMethod", [
    "AUTH_REQUEST", "COMMAND", "WHITELIST",
] };

pub(super) static SESSION_STATUS: EnumDef = closed_enum! { "SessionStatus", [
    "ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION",
] };

static CDR_DIMENSION_TYPE: EnumDef = closed_enum! { "CdrDimensionType", [
    "CURRENT", "ENERGY", "ENERGY_EXPORT", "ENERGY_IMPORT", "MAX_CURRENT", "MIN_CURRENT",
    "MAX_POWER", "MIN_POWER", "PARKING_TIME", "POWER", "RESERVATION_TIME", "STATE_OF_CHARGE",
    "TIME",
] };

// ---- Tariffs

static TARIFF: ObjectDef = class! { "Tariff", [
    one("country_code", CiText(2)),
    one("party_id", CiText(3)),
    one("id", CiText(36)),
    one("currency", Text(3)),
    opt("type", Enum(&TARIFF_TYPE)),
    many("tariff_alt_text", Object(&DISPLAY_TEXT)),
    opt("tariff_alt_url", Url),
    opt("min_price", Object(&PRICE)),
    opt("max_price", Object(&PRICE)),
    some("elements", Object(&TARIFF_ELEMENT)),
    opt("start_date_time", DateTime),
    opt("end_date_time", DateTime),
    opt("energy_mix", Object(&ENERGY_MIX)),
    one("last_updated", DateTime),
] };

/// Unchanged in 2.3.0 (its PriceComponent still has `vat`).
pub(super) static TARIFF_ELEMENT: ObjectDef = class! { "TariffElement", [
    some("price_components", Object(&PRICE_COMPONENT)),
    opt("restrictions", Object(&TARIFF_RESTRICTIONS)),
] };

static PRICE_COMPONENT: ObjectDef = class! { "PriceComponent", [
    one("type", Enum(&TARIFF_DIMENSION_TYPE)),
    one("price", Number),
    opt("vat", Number),
    one("step_size", Integer(0)),
] };

static TARIFF_RESTRICTIONS: ObjectDef = class! { "TariffRestrictions", [
    opt("start_time", Text(5)),
    opt("end_time", Text(5)),
    opt("start_date", Text(10)),
    opt("end_date", Text(10)),
    opt("min_kwh", Number),
    opt("max_kwh", Number),
    opt("min_current", Number),
    opt("max_current", Number),
    opt("min_power", Number),
    opt("max_power", Number),
    opt("min_duration", Integer(0)),
    opt("max_duration", Integer(0)),
    many("day_of_week", Enum(&DAY_OF_WEEK)),
    opt("reservation", Enum(&RESERVATION_RESTRICTION_TYPE)),
] };

pub(super) static TARIFF_TYPE: EnumDef = closed_enum! { "TariffType", [
    "AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR",
] };

static RESERVATION_RESTRICTION_TYPE: EnumDef = closed_enum! { "ReservationRestrictionType", [
    "RESERVATION", "RESERVATION_EXPIRES",
] };

// ---- Tokens

static TOKEN: ObjectDef = class! { "Token", [
    one("country_code", CiText(2)),
    one("party_id", CiText(3)),
    one("uid", CiText(36)),
    one("type", Enum(&TOKEN_TYPE)),
    one("contract_id", CiText(36)),
    opt("visual_number", Text(64)),
    one("issuer", Text(64)),
    opt("group_id", CiText(36)),
    one("valid", Boolean),
    one("whitelist", Enum(&WHITELIST_TYPE)),
    opt("language", Text(2)),
    opt("default_profile_type", Enum(&PROFILE_TYPE)),
    opt("energy_contract", Object(&ENERGY_CONTRACT)),
    one("last_updated", DateTime),
] };

pub(super) static ENERGY_CONTRACT: ObjectDef =
    class! { "EnergyContract", [one("supplier_name", Text(64)), opt("contract_id", Text(64)),] };

static TOKEN_TYPE: EnumDef = closed_enum! { "TokenType", [
    "AD_HOC_USER", "APP_USER", "OTHER", "RFID",
] };

pub(super) static PROFILE_TYPE: EnumDef = closed_enum! { "ProfileType", [
    "CHEAP", "FAST", "GREEN", "REGULAR",
] };
