"""crmwatch: catch customer-data theft from SaaS CRMs, and scope it."""
