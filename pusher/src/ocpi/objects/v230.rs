// Why this file exists: the OCPI 2.3.0 object definitions as rule tables, in the spec's field
// order. Against 2.2.1: Price is {before_taxes, taxes[]}, Tariff min/max are a PriceLimit and
// `tax_included` is required, Locations gain parking places and a help phone, EVSEs parking
// references and accepted service providers, Connectors capabilities, several enums gain
// values and become OpenEnums. Everything 2.3.0 kept unchanged comes from the older tables.

use super::v211::{
    ADDITIONAL_GEO_LOCATION, CONNECTOR_FORMAT, DISPLAY_TEXT, ENERGY_SOURCE, GEO_LOCATION, STATUS,
    STATUS_SCHEDULE,
};
use super::v221::{
    AUTH_METHOD, CHARGING_PERIOD, ENERGY_CONTRACT, HOURS, POWER_TYPE, PROFILE_TYPE, SESSION_STATUS,
    TARIFF_ELEMENT, TARIFF_TYPE,
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
    one("address", Text(255)),
    one("city", Text(45)),
    opt("postal_code", Text(10)),
    opt("state", Text(45)),
    one("country", Text(3)),
    one("coordinates", Object(&GEO_LOCATION)),
    many("related_locations", Object(&ADDITIONAL_GEO_LOCATION)),
    opt("parking_type", Enum(&PARKING_TYPE)),
    many("evses", Object(&EVSE)),
    many("parking_places", Object(&PARKING)),
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
    opt("help_phone", CiText(25)),
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
    many("parking", Object(&EVSE_PARKING)),
    many("images", Object(&IMAGE)),
    many("accepted_service_providers", Text(50)),
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
    many("capabilities", Enum(&CONNECTOR_CAPABILITY)),
    one("last_updated", DateTime),
] };

static PARKING: ObjectDef = class! { "Parking", [
    one("id", CiText(36)),
    opt("physical_reference", Text(12)),
    some("vehicle_types", Enum(&VEHICLE_TYPE)),
    opt("max_vehicle_weight", Number),
    opt("max_vehicle_height", Number),
    opt("max_vehicle_length", Number),
    opt("max_vehicle_width", Number),
    opt("parking_space_length", Number),
    opt("parking_space_width", Number),
    opt("dangerous_goods_allowed", Boolean),
    opt("direction", Enum(&PARKING_DIRECTION)),
    opt("drive_through", Boolean),
    one("restricted_to_type", Boolean),
    one("reservation_required", Boolean),
    opt("time_limit", Number),
    opt("roofed", Boolean),
    many("images", Object(&IMAGE)),
    opt("lighting", Boolean),
    opt("refrigeration_outlet", Boolean),
    many("standards", CiText(36)),
    // The spec gives this CiString no length.
    opt("apds_reference", CiText(0)),
] };

static EVSE_PARKING: ObjectDef = class! { "EVSEParking", [
    one("parking_id", CiText(36)),
    opt("evse_position", Enum(&EVSE_POSITION)),
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

static CAPABILITY: EnumDef = open_enum! { "Capability", [
    "CHARGING_PROFILE_CAPABLE", "CHARGING_PREFERENCES_CAPABLE", "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT", "CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER", "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE", "UNLOCK_CAPABLE",
] };

static CONNECTOR_CAPABILITY: EnumDef = open_enum! { "ConnectorCapability", [
    "ISO_15118_2_PLUG_AND_CHARGE", "ISO_15118_20_PLUG_AND_CHARGE",
] };

static CONNECTOR_TYPE: EnumDef = open_enum! { "ConnectorType", [
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E",
    "DOMESTIC_F", "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K",
    "DOMESTIC_L", "DOMESTIC_M", "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC",
    "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64",
    "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A",
    "IEC_62196_T3C", "MCS", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50",
    "NEMA_14_30", "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "SAE_J3400",
    "TESLA_R", "TESLA_S",
] };

static ENVIRONMENTAL_IMPACT_CATEGORY: EnumDef = open_enum! { "EnvironmentalImpactCategory", [
    "NUCLEAR_WASTE", "CARBON_DIOXIDE",
] };

static FACILITY: EnumDef = open_enum! { "Facility", [
    "HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE",
    "MUSEUM", "BIKE_SHARING", "BUS_STOP", "TAXI_STAND", "TRAM_STOP", "METRO_STATION",
    "TRAIN_STATION", "AIRPORT", "PARKING_LOT", "CARPOOL_PARKING", "FUEL_STATION", "WIFI",
] };

static IMAGE_CATEGORY: EnumDef = open_enum! { "ImageCategory", [
    "CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER",
] };

static PARKING_RESTRICTION: EnumDef = open_enum! { "ParkingRestriction", [
    "CUSTOMERS", "DISABLED", "EMPLOYEES", "EV_ONLY", "MOTORCYCLES", "PLUGGED", "TAXIS", "TENANTS",
] };

static PARKING_TYPE: EnumDef = open_enum! { "ParkingType", [
    "ALONG_MOTORWAY", "PARKING_GARAGE", "PARKING_LOT", "ON_DRIVEWAY", "ON_STREET",
    "UNDERGROUND_GARAGE",
] };

static VEHICLE_TYPE: EnumDef = open_enum! { "VehicleType", [
    "MOTORCYCLE", "PERSONAL_VEHICLE", "PERSONAL_VEHICLE_WITH_TRAILER", "VAN", "SEMI_TRACTOR",
    "RIGID", "TRUCK_WITH_TRAILER", "BUS", "DISABLED",
] };

static PARKING_DIRECTION: EnumDef = closed_enum! { "ParkingDirection", [
    "PARALLEL", "PERPENDICULAR", "ANGLE",
] };

static EVSE_POSITION: EnumDef = closed_enum! { "EVSEPosition", ["LEFT", "RIGHT", "CENTER"] };

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

static SIGNED_DATA: ObjectDef = class! { "SignedData", [
    one("encoding_method", CiText(36)),
    opt("encoding_method_version", Integer(0)),
    opt("public_key", Text(512)),
    some("signed_values", Object(&SIGNED_VALUE)),
    opt("url", Text(512)),
] };

static SIGNED_VALUE: ObjectDef = class! { "SignedValue", [
    one("nature", CiText(32)),
    one("plain_data", Text(5000)),
    one("signed_data", Text(5000)),
] };

static PRICE: ObjectDef = class! { "Price", [
    one("before_taxes", Number),
    many("taxes", Object(&TAX_AMOUNT)),
] };

static TAX_AMOUNT: ObjectDef = class! { "TaxAmount", [
    // The spec gives these strings no length.
    one("name", Text(0)),
    opt("account_number", Text(0)),
    opt("percentage", Number),
    one("amount", Number),
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
    opt("min_price", Object(&PRICE_LIMIT)),
    opt("max_price", Object(&PRICE_LIMIT)),
    some("elements", Object(&TARIFF_ELEMENT)),
    one("tax_included", Enum(&TAX_INCLUDED)),
    opt("start_date_time", DateTime),
    opt("end_date_time", DateTime),
    opt("energy_mix", Object(&ENERGY_MIX)),
    one("last_updated", DateTime),
] };

static PRICE_LIMIT: ObjectDef =
    class! { "PriceLimit", [one("before_taxes", Number), opt("after_taxes", Number),] };

static TAX_INCLUDED: EnumDef = closed_enum! { "TaxIncluded", ["YES", "NO", "N/A"] };

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
    one("whitelist", Enum(&super::v211::WHITELIST_TYPE)),
    opt("language", Text(2)),
    opt("default_profile_type", Enum(&PROFILE_TYPE)),
    opt("energy_contract", Object(&ENERGY_CONTRACT)),
    one("last_updated", DateTime),
] };

static TOKEN_TYPE: EnumDef = open_enum! { "TokenType", [
    "AD_HOC_USER", "APP_USER", "EMAID", "OTHER", "RFID",
] };
