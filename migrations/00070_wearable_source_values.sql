-- Wearable samples keep the value and unit their source sent beside the
-- normalized ones (154 lb stays 154 lb next to 69.85 kg): conversions are
-- exact decimal (internal/wearables/units) and keep the source's precision,
-- and the original lets anyone check or redo them. NULL: the source sent
-- the normalized unit (or a value computed here, such as sleep minutes).

-- +goose Up
ALTER TABLE switchboard.wearable_samples
    ADD COLUMN source_value numeric,
    ADD COLUMN source_unit  text CHECK (char_length(source_unit) <= 40);

-- +goose Down
ALTER TABLE switchboard.wearable_samples DROP COLUMN source_unit, DROP COLUMN source_value;
