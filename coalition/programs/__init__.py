"""Programs a shop runs on the shared points: rewards and vouchers, stamp cards, partner quests, tiers, campaigns."""
