-- Runs in each organization's copy (search_path = addon_ledger_<org8>): names its tables plainly.
CREATE INDEX IF NOT EXISTS entries_memo_idx ON entries (memo);
