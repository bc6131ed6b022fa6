"""crmwatch: catch customer-data theft from SaaS CRMs, and scope it."""

__version__ = "0.1.0"
