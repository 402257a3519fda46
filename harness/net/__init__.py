"""The controller's network: proxies for the local provider's peer links, message filters, grudges."""
