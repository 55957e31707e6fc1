"""Benchmarks and their harness, outside the product: the local cluster (a dealer and two
server processes on loopback), the programs both servers run for `twofold bench`, the data
generators (TPC-H through tpchgen-cli, an OULAD-shaped data set) and the reports (median, min
and max of repeated runs, with the machine and package versions)."""
