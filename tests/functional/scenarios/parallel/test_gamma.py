from parallel_suite import make_class

for _label in ("gammaone", "gammatwo"):
    _cls = make_class(_label, __name__)
    globals()[_cls.__name__] = _cls
