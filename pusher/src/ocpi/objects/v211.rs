// Why this file exists: the OCPI 2.1.1 object definitions (Locations, Sessions, CDRs, Tariffs,
// Tokens and the classes they use) as rule tables, in the spec's field order. 2.1.1 objects
// carry no country_code/party_id, ids are plain string(39)/string(36) (only the CDR id is a
// CiString), and Sessions and CDRs embed a whole Location. Classes that 2.2.1 and 2.3.0 kept
// unchanged are `pub(super)` and reused by their tables.

use super::FieldKind::{Boolean, DateTime, Enum, Integer, Number, Object, Text, Url};
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
    one("id", Text(39)),
    one("type", Enum(&LOCATION_TYPE)),
    opt("name", Text(255)),
    one("address", Text(45)),
    one("city", Text(45)),
    one("postal_code", Text(10)),
    one("country", Text(3)),
    one("coordinates", Object(&GEO_LOCATION)),
    many("related_locations", Object(&ADDITIONAL_GEO_LOCATION)),
    many("evses", Object(&EVSE)),
    many("directions", Object(&DISPLAY_TEXT)),
    opt("operator", Object(&BUSINESS_DETAILS)),
    opt("suboperator", Object(&BUSINESS_DETAILS)),
    opt("owner", Object(&BUSINESS_DETAILS)),
    many("facilities", Enum(&FACILITY)),
    opt("time_zone", Text(255)),
    opt("opening_times", Object(&HOURS)),
    opt("charging_when_closed", Boolean),
    many("images", Object(&IMAGE)),
    opt("energy_mix", Object(&ENERGY_MIX)),
    one("last_updated", DateTime),
] };

static EVSE: ObjectDef = class! { "EVSE", [
    one("uid", Text(39)),
    opt("evse_id", Text(48)),
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
    one("id", Text(36)),
    one("standard", Enum(&CONNECTOR_TYPE)),
    one("format", Enum(&CONNECTOR_FORMAT)),
    one("power_type", Enum(&POWER_TYPE)),
    one("voltage", Integer(0)),
    one("amperage", Integer(0)),
    opt("tariff_id", Text(36)),
    opt("terms_and_conditions", Url),
    one("last_updated", DateTime),
] };

pub(super) static GEO_LOCATION: ObjectDef =
    class! { "GeoLocation", [one("latitude", Text(10)), one("longitude", Text(11)),] };

pub(super) static ADDITIONAL_GEO_LOCATION: ObjectDef = class! { "AdditionalGeoLocation", [
    one("latitude", Text(10)),
    one("longitude", Text(11)),
    opt("name", Object(&DISPLAY_TEXT)),
] };

pub(super) static DISPLAY_TEXT: ObjectDef =
    class! { "DisplayText", [one("language", Text(2)), one("text", Text(512)),] };

static BUSINESS_DETAILS: ObjectDef = class! { "BusinessDetails", [
    one("name", Text(100)),
    opt("website", Url),
    opt("logo", Object(&IMAGE)),
] };

static IMAGE: ObjectDef = class! { "Image", [
    one("url", Url),
    opt("thumbnail", Url),
    one("category", Enum(&IMAGE_CATEGORY)),
    one("type", Text(4)),
    opt("width", Integer(5)),
    opt("height", Integer(5)),
] };

/// 2.1.1 Hours is a choice: `regular_hours` or `twentyfourseven`, exactly one of them.
static HOURS: ObjectDef = ObjectDef {
    name: "Hours",
    fields: &[
        many("regular_hours", Object(&REGULAR_HOURS)),
        opt("twentyfourseven", Boolean),
        many("exceptional_openings", Object(&EXCEPTIONAL_PERIOD)),
        many("exceptional_closings", Object(&EXCEPTIONAL_PERIOD)),
    ],
    exactly_one_of: &["regular_hours", "twentyfourseven"],
};

pub(super) static REGULAR_HOURS: ObjectDef = class! { "RegularHours", [
    one("weekday", Integer(1)),
    one("period_begin", Text(5)),
    one("period_end", Text(5)),
] };

pub(super) static EXCEPTIONAL_PERIOD: ObjectDef =
    class! { "ExceptionalPeriod", [one("period_begin", DateTime), one("period_end", DateTime),] };

pub(super) static STATUS_SCHEDULE: ObjectDef = class! { "StatusSchedule", [
    one("period_begin", DateTime),
    opt("period_end", DateTime),
    one("status", Enum(&STATUS)),
] };

static ENERGY_MIX: ObjectDef = class! { "EnergyMix", [
    one("is_green_energy", Boolean),
    many("energy_sources", Object(&ENERGY_SOURCE)),
    many("environ_impact", Object(&ENVIRONMENTAL_IMPACT)),
    opt("supplier_name", Text(64)),
    opt("energy_product_name", Text(64)),
] };

pub(super) static ENERGY_SOURCE: ObjectDef = class! { "EnergySource", [
    one("source", Enum(&ENERGY_SOURCE_CATEGORY)),
    one("percentage", Number),
] };

/// 2.1.1 names the category field `source` (2.2.1: `category`).
static ENVIRONMENTAL_IMPACT: ObjectDef = class! { "EnvironmentalImpact", [
    one("source", Enum(&ENVIRONMENTAL_IMPACT_CATEGORY)),
    one("amount", Number),
] };

static LOCATION_TYPE: EnumDef = closed_enum! { "LocationType", [
    "ON_STREET", "PARKING_GARAGE", "UNDERGROUND_GARAGE", "PARKING_LOT", "OTHER", "UNKNOWN",
] };

pub(super) static STATUS: EnumDef = closed_enum! { "Status", [
    "AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED",
    "RESERVED", "UNKNOWN",
] };

static CAPABILITY: EnumDef = closed_enum! { "Capability", [
    "CHARGING_PROFILE_CAPABLE", "CREDIT_CARD_PAYABLE", "REMOTE_START_STOP_CAPABLE", "RESERVABLE",
    "RFID_READER", "UNLOCK_CAPABLE",
] };

static CONNECTOR_TYPE: EnumDef = closed_enum! { "ConnectorType", [
    "CHADEMO", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E", "DOMESTIC_F",
    "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L",
    "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64",
    "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A",
    "IEC_62196_T3C", "TESLA_R", "TESLA_S",
] };

pub(super) static CONNECTOR_FORMAT: EnumDef = closed_enum! { "ConnectorFormat", [
    "SOCKET", "CABLE",
] };

static POWER_TYPE: EnumDef = closed_enum! { "PowerType", ["AC_1_PHASE", "AC_3_PHASE", "DC"] };

static FACILITY: EnumDef = closed_enum! { "Facility", [
    "HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE",
    "MUSEUM", "BUS_STOP", "TAXI_STAND", "TRAIN_STATION", "AIRPORT", "CARPOOL_PARKING",
    "FUEL_STATION", "WIFI",
] };

pub(super) static IMAGE_CATEGORY: EnumDef = closed_enum! { "ImageCategory", [
    "CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER",
] };

pub(super) static PARKING_RESTRICTION: EnumDef = closed_enum! { "ParkingRestriction", [
    "EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES",
] };

pub(super) static ENERGY_SOURCE_CATEGORY: EnumDef = closed_enum! { "EnergySourceCategory", [
    "NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER",
] };

pub(super) static ENVIRONMENTAL_IMPACT_CATEGORY: EnumDef = closed_enum! { "EnvironmentalImpactCategory", [
    "NUCLEAR_WASTE", "CARBON_DIOXIDE",
] };

// ---- Sessions and CDRs

static SESSION: ObjectDef = class! { "Session", [
    one("id", Text(36)),
    one("start_datetime", DateTime),
    opt("end_datetime", DateTime),
    one("kwh", Number),
    one("auth_id", Text(36)),
    one("auth_method", Enum(&AUTH_METHOD)),
    one("location", Object(&LOCATION)),
    opt("meter_id", Text(255)),
    one("currency", Text(3)),
    many("charging_periods", Object(&CHARGING_PERIOD)),
    opt("total_cost", Number),
    one("status", Enum(&SESSION_STATUS)),
    one("last_updated", DateTime),
] };

static CDR: ObjectDef = class! { "CDR", [
    one("id", super::FieldKind::CiText(36)),
    one("start_date_time", DateTime),
    one("stop_date_time", DateTime),
    one("auth_id", Text(36)),
    one("auth_method", Enum(&AUTH_METHOD)),
    one("location", Object(&LOCATION)),
    opt("meter_id", Text(255)),
    one("currency", Text(3)),
    many("tariffs", Object(&TARIFF)),
    some("charging_periods", Object(&CHARGING_PERIOD)),
    one("total_cost", Number),
    one("total_energy", Number),
    one("total_time", Number),
    opt("total_parking_time", Number),
    opt("remark", Text(255)),
    one("last_updated", DateTime),
] };

static CHARGING_PERIOD: ObjectDef = class! { "ChargingPeriod", [
    one("start_date_time", DateTime),
    some("dimensions", Object(&CDR_DIMENSION)),
] };

static CDR_DIMENSION: ObjectDef = class! { "CdrDimension", [
    one("type", Enum(&CDR_DIMENSION_TYPE)),
    one("volume", Number),
] };

static AUTH_METHOD: EnumDef = closed_enum! { "AuthMethod", ["AUTH_REQUEST", "WHITELIST"] };

static SESSION_STATUS: EnumDef = closed_enum! { "SessionStatus", [
    "ACTIVE", "COMPLETED", "INVALID", "PENDING",
] };

static CDR_DIMENSION_TYPE: EnumDef = closed_enum! { "CdrDimensionType", [
    "ENERGY", "FLAT", "MAX_CURRENT", "MIN_CURRENT", "PARKING_TIME", "TIME",
] };

// ---- Tariffs

static TARIFF: ObjectDef = class! { "Tariff", [
    one("id", Text(36)),
    one("currency", Text(3)),
    many("tariff_alt_text", Object(&DISPLAY_TEXT)),
    opt("tariff_alt_url", Url),
    some("elements", Object(&TARIFF_ELEMENT)),
    opt("energy_mix", Object(&ENERGY_MIX)),
    one("last_updated", DateTime),
] };

static TARIFF_ELEMENT: ObjectDef = class! { "TariffElement", [
    some("price_components", Object(&PRICE_COMPONENT)),
    opt("restrictions", Object(&TARIFF_RESTRICTIONS)),
] };

static PRICE_COMPONENT: ObjectDef = class! { "PriceComponent", [
    one("type", Enum(&TARIFF_DIMENSION_TYPE)),
    one("price", Number),
    one("step_size", Integer(0)),
] };

static TARIFF_RESTRICTIONS: ObjectDef = class! { "TariffRestrictions", [
    opt("start_time", Text(5)),
    opt("end_time", Text(5)),
    opt("start_date", Text(10)),
    opt("end_date", Text(10)),
    opt("min_kwh", Number),
    opt("max_kwh", Number),
    opt("min_power", Number),
    opt("max_power", Number),
    opt("min_duration", Integer(0)),
    opt("max_duration", Integer(0)),
    many("day_of_week", Enum(&DAY_OF_WEEK)),
] };

pub(super) static TARIFF_DIMENSION_TYPE: EnumDef = closed_enum! { "TariffDimensionType", [
    "ENERGY", "FLAT", "PARKING_TIME", "TIME",
] };

pub(super) static DAY_OF_WEEK: EnumDef = closed_enum! { "DayOfWeek", [
    "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY",
] };

// ---- Tokens

static TOKEN: ObjectDef = class! { "Token", [
    one("uid", Text(36)),
    one("type", Enum(&TOKEN_TYPE)),
    one("auth_id", Text(36)),
    opt("visual_number", Text(64)),
    one("issuer", Text(64)),
    one("valid", Boolean),
    one("whitelist", Enum(&WHITELIST_TYPE)),
    opt("language", Text(2)),
    one("last_updated", DateTime),
] };

static TOKEN_TYPE: EnumDef = closed_enum! { "TokenType", ["RFID", "OTHER"] };

pub(super) static WHITELIST_TYPE: EnumDef = closed_enum! { "WhitelistType", [
    "ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER",
] };
