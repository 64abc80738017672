"""fieldsync's device library for Python: the UniFFI bindings of `fieldsync-mobile`, made to behave
the way Python users expect.

    from fieldsync import fieldsync_mobile as fs
    client = fs.FieldsyncClient("/path/to/store", "http://127.0.0.1:8080")

UniFFI generates the modules `fieldsync_mobile` and `fieldsync_core` next to this file
(`mobile-ffi/generate-bindings.sh` copies this file in as the package's `__init__.py`). Importing the
package then makes, once, for every generated record and error:

- `repr()` show the fields (`GeoPoint(lat=45.76, lon=4.83, datum=wgs84)`), as a dataclass would;
- a record check its field types when it is built (`GpsFix(lat="45", ...)` raises `TypeError`
  there, not later inside the call that receives it);
- `str(e)` of a `FieldsyncError` read as a sentence (`offline: connection refused`), the same text
  the Rust error displays, while the typed fields (`e.message`, `e.doc`, `e.reason`, …) stay.
"""

from . import fieldsync_core, fieldsync_mobile

# How each error variant reads, as its Rust `Display` (mobile-ffi/src/error.rs) words it.
_ERROR_TEXT = {
    "Offline": "offline: {message}",
    "Unauthorized": "unauthorized: {message}",
    "Rejected": "rejected {doc}: {reason}",
    "InvalidInput": "invalid {field}: {reason}",
    "NotFound": "not found: {id}",
    "Storage": "storage: {message}",
    "Cancelled": "sync cancelled",
    "Internal": "internal error: {message}",
}


def _checked_init(init, converter):
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        converter.check_lower(self)

    __init__.__doc__ = init.__doc__
    return __init__


def _polish_records(module):
    for name, cls in list(vars(module).items()):
        if not isinstance(cls, type) or cls.__module__ != module.__name__ or issubclass(cls, BaseException):
            continue
        converter = getattr(module, "_UniffiFfiConverterType" + name, None)
        is_record = "__eq__" in vars(cls) and "__str__" in vars(cls) and converter is not None
        if not is_record or not hasattr(converter, "check_lower"):
            continue
        cls.__repr__ = cls.__str__
        cls.__init__ = _checked_init(cls.__init__, converter)


def _polish_errors():
    base = fieldsync_mobile.FieldsyncError
    for name, text in _ERROR_TEXT.items():
        variant = getattr(base, name, None)
        if variant is None:
            continue

        def __str__(self, text=text):
            return text.format(**vars(self))

        def __repr__(self, name=name):
            fields = ", ".join("{}={!r}".format(k, v) for k, v in vars(self).items())
            return "FieldsyncError.{}({})".format(name, fields)

        variant.__str__ = __str__
        variant.__repr__ = __repr__


_polish_records(fieldsync_core)
_polish_records(fieldsync_mobile)
_polish_errors()
