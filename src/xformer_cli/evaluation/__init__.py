"""sacreBLEU metrics, the test sets, a model's scores on them."""
