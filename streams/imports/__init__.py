"""`leadpulse import`: a CRM's own exports (one row per contact, lead, deal, opportunity) as contract events."""
