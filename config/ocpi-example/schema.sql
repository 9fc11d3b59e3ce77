-- An OCPI-shaped example database for the bridge and the pusher (MariaDB 10.5+ / MySQL 8).
--
-- One table per OCPI object; column names follow the OCPI 2.2.1 field names so that
-- mapping.toml stays readable. Every table has a primary key (the bridge needs one to name a
-- record) and a last_updated DATETIME(3) column kept by the database.
--
-- Time: DATETIME columns hold the local time of the application's sessions (CURRENT_TIMESTAMP(3)
-- defaults included); the pusher reads them in its [source] time_zone ("UTC" unless set) when
-- it writes OCPI date-times ("...Z"). UTC sessions (SET time_zone = '+00:00') keep it simple.
--
-- Removal, as OCPI knows it:
--   locations  never deleted in OCPI: no deleted column; take a location out with publish = 0
--              or by setting its EVSEs to REMOVED.
--   evses      status = 'REMOVED'.
--   connectors never deleted in OCPI on their own (their EVSE is PUT without them).
--   tariffs    deleted = 1 (soft delete; the partner gets a DELETE).
--   sessions   status = 'INVALID' (a deleted row is pushed as INVALID too).
--   cdrs       never: a CDR is corrected by a credit CDR (a new row, credit = 1).
--   tokens     valid = 0.
--
-- Load with: mariadb < config/ocpi-example/schema.sql   (or mysql < ...)

CREATE DATABASE IF NOT EXISTS ocpi CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE ocpi;

CREATE TABLE locations (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  id            VARCHAR(36)   NOT NULL,
  publish       TINYINT(1)    NOT NULL DEFAULT 1,
  name          VARCHAR(255)  NULL,
  address       VARCHAR(45)   NOT NULL,
  city          VARCHAR(45)   NOT NULL,
  postal_code   VARCHAR(10)   NULL,
  state         VARCHAR(20)   NULL,
  country       CHAR(3)       NOT NULL,
  latitude      DECIMAL(9,6)  NOT NULL,
  longitude     DECIMAL(10,6) NOT NULL,
  parking_type  ENUM('ALONG_MOTORWAY','PARKING_GARAGE','PARKING_LOT','ON_DRIVEWAY','ON_STREET',
                     'UNDERGROUND_GARAGE') NULL,
  operator_name VARCHAR(100)  NULL,
  time_zone     VARCHAR(255)  NOT NULL,
  opening_times JSON          NULL,
  charging_when_closed TINYINT(1) NULL,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE evses (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  location_id   VARCHAR(36)   NOT NULL,
  uid           VARCHAR(36)   NOT NULL,
  evse_id       VARCHAR(48)   NULL,
  status        ENUM('AVAILABLE','BLOCKED','CHARGING','INOPERATIVE','OUTOFORDER','PLANNED',
                     'REMOVED','RESERVED','UNKNOWN') NOT NULL DEFAULT 'UNKNOWN',
  capabilities  SET('CHARGING_PROFILE_CAPABLE','CHARGING_PREFERENCES_CAPABLE','CHIP_CARD_SUPPORT',
                    'CONTACTLESS_CARD_SUPPORT','CREDIT_CARD_PAYABLE','DEBIT_CARD_PAYABLE',
                    'PED_TERMINAL','REMOTE_START_STOP_CAPABLE','RESERVABLE','RFID_READER',
                    'START_SESSION_CONNECTOR_REQUIRED','TOKEN_GROUP_CAPABLE','UNLOCK_CAPABLE')
                NOT NULL DEFAULT '',
  floor_level   VARCHAR(4)    NULL,
  latitude      DECIMAL(9,6)  NULL,
  longitude     DECIMAL(10,6) NULL,
  physical_reference VARCHAR(16) NULL,
  parking_restrictions JSON   NULL,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, location_id, uid),
  CONSTRAINT evses_location FOREIGN KEY (country_code, party_id, location_id)
    REFERENCES locations (country_code, party_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE connectors (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  location_id   VARCHAR(36)   NOT NULL,
  evse_uid      VARCHAR(36)   NOT NULL,
  id            VARCHAR(36)   NOT NULL,
  -- ConnectorType: CHADEMO, IEC_62196_T2, IEC_62196_T2_COMBO, ... (a list that grows: text).
  standard      VARCHAR(40)   NOT NULL,
  format        ENUM('SOCKET','CABLE') NOT NULL,
  power_type    ENUM('AC_1_PHASE','AC_2_PHASE','AC_2_PHASE_SPLIT','AC_3_PHASE','DC') NOT NULL,
  max_voltage   INT           NOT NULL,
  max_amperage  INT           NOT NULL,
  max_electric_power INT      NULL,
  tariff_ids    JSON          NULL,
  terms_and_conditions VARCHAR(255) NULL,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, location_id, evse_uid, id),
  CONSTRAINT connectors_evse FOREIGN KEY (country_code, party_id, location_id, evse_uid)
    REFERENCES evses (country_code, party_id, location_id, uid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE tariffs (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  id            VARCHAR(36)   NOT NULL,
  currency      CHAR(3)       NOT NULL,
  type          ENUM('AD_HOC_PAYMENT','PROFILE_CHEAPEST','PROFILE_FASTEST','PROFILE_GREEN',
                     'REGULAR') NULL,
  tariff_alt_text JSON        NULL,
  tariff_alt_url VARCHAR(255) NULL,
  elements      JSON          NOT NULL,
  start_date_time DATETIME(3) NULL,
  end_date_time DATETIME(3)   NULL,
  deleted       TINYINT(1)    NOT NULL DEFAULT 0,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sessions (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  id            VARCHAR(36)   NOT NULL,
  start_date_time DATETIME(3) NOT NULL,
  end_date_time DATETIME(3)   NULL,
  kwh           DECIMAL(12,4) NOT NULL DEFAULT 0,
  -- CdrToken: {"country_code", "party_id", "uid", "type", "contract_id"}
  cdr_token     JSON          NOT NULL,
  auth_method   ENUM('AUTH_REQUEST','COMMAND','WHITELIST') NOT NULL,
  authorization_reference VARCHAR(36) NULL,
  location_id   VARCHAR(36)   NOT NULL,
  evse_uid      VARCHAR(36)   NOT NULL,
  connector_id  VARCHAR(36)   NOT NULL,
  meter_id      VARCHAR(255)  NULL,
  currency      CHAR(3)       NOT NULL,
  total_cost_excl_vat DECIMAL(12,4) NULL,
  total_cost_incl_vat DECIMAL(12,4) NULL,
  status        ENUM('ACTIVE','COMPLETED','INVALID','PENDING','RESERVATION') NOT NULL,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE cdrs (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  id            VARCHAR(39)   NOT NULL,
  session_id    VARCHAR(36)   NULL,
  start_date_time DATETIME(3) NOT NULL,
  end_date_time DATETIME(3)   NOT NULL,
  currency      CHAR(3)       NOT NULL,
  total_energy  DECIMAL(12,4) NOT NULL,
  total_cost_excl_vat DECIMAL(12,4) NOT NULL,
  credit        TINYINT(1)    NOT NULL DEFAULT 0,
  credit_reference_id VARCHAR(39) NULL,
  -- The whole CDR object as the application built it (sent as is).
  ocpi_object   JSON          NOT NULL,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE tokens (
  country_code  CHAR(2)       NOT NULL,
  party_id      VARCHAR(3)    NOT NULL,
  uid           VARCHAR(36)   NOT NULL,
  type          ENUM('AD_HOC_USER','APP_USER','OTHER','RFID') NOT NULL,
  contract_id   VARCHAR(36)   NOT NULL,
  visual_number VARCHAR(64)   NULL,
  issuer        VARCHAR(64)   NOT NULL,
  group_id      VARCHAR(36)   NULL,
  valid         TINYINT(1)    NOT NULL DEFAULT 1,
  whitelist     ENUM('ALWAYS','ALLOWED','ALLOWED_OFFLINE','NEVER') NOT NULL,
  language      CHAR(2)       NULL,
  default_profile_type ENUM('CHEAP','FAST','GREEN','REGULAR') NULL,
  last_updated  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (country_code, party_id, uid, type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Seed data ---------------------------------------------------------------------------------

INSERT INTO locations (country_code, party_id, id, publish, name, address, city, postal_code,
                       country, latitude, longitude, parking_type, operator_name, time_zone,
                       opening_times, charging_when_closed, last_updated)
VALUES ('NL', 'EXA', 'LOC1', 1, 'Stationsplein', 'Stationsplein 1', 'Utrecht', '3511 ED',
        'NLD', 52.089444, 5.110278, 'PARKING_LOT', 'Example Charging', 'Europe/Amsterdam',
        '{"twentyfourseven": true}', 1, '2026-01-05 09:00:00.000'),
       ('NL', 'EXA', 'LOC2', 1, 'Havenkade', 'Havenkade 12', 'Rotterdam', '3011 AA',
        'NLD', 51.917222, 4.484722, 'ON_STREET', 'Example Charging', 'Europe/Amsterdam',
        '{"twentyfourseven": false, "regular_hours": [{"weekday": 1, "period_begin": "07:00", "period_end": "22:00"}]}',
        0, '2026-01-05 09:00:00.000');

INSERT INTO evses (country_code, party_id, location_id, uid, evse_id, status, capabilities,
                   floor_level, latitude, longitude, physical_reference, parking_restrictions,
                   last_updated)
VALUES ('NL', 'EXA', 'LOC1', 'EVSE1', 'NL*EXA*E1', 'AVAILABLE', 'RFID_READER,REMOTE_START_STOP_CAPABLE',
        '0', 52.089500, 5.110300, '1', NULL, '2026-01-05 09:00:00.000'),
       ('NL', 'EXA', 'LOC1', 'EVSE2', 'NL*EXA*E2', 'CHARGING', 'RFID_READER',
        '0', NULL, NULL, '2', '["EV_ONLY"]', '2026-01-05 09:00:00.000'),
       ('NL', 'EXA', 'LOC2', 'EVSE3', 'NL*EXA*E3', 'AVAILABLE', '',
        NULL, NULL, NULL, NULL, NULL, '2026-01-05 09:00:00.000');

INSERT INTO connectors (country_code, party_id, location_id, evse_uid, id, standard, format,
                        power_type, max_voltage, max_amperage, max_electric_power, tariff_ids,
                        last_updated)
VALUES ('NL', 'EXA', 'LOC1', 'EVSE1', '1', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, 32, 22000,
        '["TARIFF_AC"]', '2026-01-05 09:00:00.000'),
       ('NL', 'EXA', 'LOC1', 'EVSE2', '1', 'IEC_62196_T2_COMBO', 'CABLE', 'DC', 920, 200, 150000,
        '["TARIFF_DC"]', '2026-01-05 09:00:00.000'),
       ('NL', 'EXA', 'LOC2', 'EVSE3', '1', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, 16, 11000,
        '["TARIFF_AC"]', '2026-01-05 09:00:00.000');

INSERT INTO tariffs (country_code, party_id, id, currency, type, tariff_alt_text, elements,
                     deleted, last_updated)
VALUES ('NL', 'EXA', 'TARIFF_AC', 'EUR', 'REGULAR',
        '[{"language": "en", "text": "0.35 EUR/kWh"}]',
        '[{"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21.0, "step_size": 1}]}]',
        0, '2026-01-05 09:00:00.000'),
       ('NL', 'EXA', 'TARIFF_DC', 'EUR', 'REGULAR',
        '[{"language": "en", "text": "0.59 EUR/kWh"}]',
        '[{"price_components": [{"type": "ENERGY", "price": 0.59, "vat": 21.0, "step_size": 1}]}]',
        0, '2026-01-05 09:00:00.000');

INSERT INTO tokens (country_code, party_id, uid, type, contract_id, visual_number, issuer,
                    valid, whitelist, language, last_updated)
VALUES ('DE', 'MSP', '04A1B2C3D4E5F6', 'RFID', 'DE-MSP-C12345678-9', 'DE-MSP-12345678',
        'Example MSP', 1, 'ALLOWED', 'de', '2026-01-05 09:00:00.000'),
       ('DE', 'MSP', 'app-7f3e', 'APP_USER', 'DE-MSP-C87654321-1', NULL,
        'Example MSP', 1, 'ALWAYS', 'en', '2026-01-05 09:00:00.000');

INSERT INTO sessions (country_code, party_id, id, start_date_time, end_date_time, kwh, cdr_token,
                      auth_method, location_id, evse_uid, connector_id, currency,
                      total_cost_excl_vat, total_cost_incl_vat, status, last_updated)
VALUES ('NL', 'EXA', 'SES1', '2026-01-05 10:00:00.000', '2026-01-05 10:45:00.000', 12.5000,
        '{"country_code": "DE", "party_id": "MSP", "uid": "04A1B2C3D4E5F6", "type": "RFID", "contract_id": "DE-MSP-C12345678-9"}',
        'WHITELIST', 'LOC1', 'EVSE1', '1', 'EUR', 4.3750, 5.2938, 'COMPLETED',
        '2026-01-05 10:45:00.500');

INSERT INTO cdrs (country_code, party_id, id, session_id, start_date_time, end_date_time,
                  currency, total_energy, total_cost_excl_vat, credit, ocpi_object, last_updated)
VALUES ('NL', 'EXA', 'CDR1', 'SES1', '2026-01-05 10:00:00.000', '2026-01-05 10:45:00.000',
        'EUR', 12.5000, 4.3750, 0,
        '{"country_code": "NL", "party_id": "EXA", "id": "CDR1", "start_date_time": "2026-01-05T10:00:00Z", "end_date_time": "2026-01-05T10:45:00Z", "session_id": "SES1", "cdr_token": {"country_code": "DE", "party_id": "MSP", "uid": "04A1B2C3D4E5F6", "type": "RFID", "contract_id": "DE-MSP-C12345678-9"}, "auth_method": "WHITELIST", "cdr_location": {"id": "LOC1", "address": "Stationsplein 1", "city": "Utrecht", "postal_code": "3511 ED", "country": "NLD", "coordinates": {"latitude": "52.089444", "longitude": "5.110278"}, "evse_uid": "EVSE1", "evse_id": "NL*EXA*E1", "connector_id": "1", "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"}, "currency": "EUR", "charging_periods": [{"start_date_time": "2026-01-05T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 12.5}], "tariff_id": "TARIFF_AC"}], "total_cost": {"excl_vat": 4.375, "incl_vat": 5.29}, "total_energy": 12.5, "total_time": 0.75, "last_updated": "2026-01-05T10:46:00Z"}',
        '2026-01-05 10:46:00.000');
