"""Carbon-intensity sources behind one Protocol: Electricity Maps, shipped traces, static annual values, a chain."""
