"""faultline's controller: config, hosts, DB adapters, generator, nemeses, history, store, CLI."""
