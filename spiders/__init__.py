"""The Scrapy project: settings, items and one spider per HKMA source. Spiders only extract."""
