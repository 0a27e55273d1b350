"""The virtual board's machine.py copies the ESP32 port's API as the port's own argument
tables have it (not the generic documentation stubs, which carry e.g. Pin.irq's `hard` and
`priority`, which the ESP32 port lacks): every public class, method, function and constant
the stand-in offers is in PORT below, each parameter by the port's name, kind and default.
PORT was read from micropython/micropython at v1.26.0 (unchanged to v1.28.0); each entry
names the file and the C table or Python def it was read from."""

import ast
from pathlib import Path

import pytest

STANDIN = Path(__file__).parents[1] / "host" / "penctl" / "sim" / "vm" / "machine.py"
EXTRA = STANDIN.parent / "machine_extra.py"  # the rest of machine, loaded at first use
TAG = "v1.26.0"
REQUIRED = object()  # a parameter without a default
# kinds: "pos" positional or keyword (an mp_arg_t without MP_ARG_KW_ONLY, a Python
# parameter), "kw" keyword only (MP_ARG_KW_ONLY), "only" positional only (the C function
# takes its arguments by position: MP_DEFINE_CONST_FUN_OBJ_1/2/VAR_BETWEEN; the name is
# the stand-in's to choose), "var" *args/**kwargs (a Python def that takes them).
# Defaults are the table's values; MP_OBJ_NULL ("not given") is None.
POS, KW, ONLY, VAR = "pos", "kw", "only", "var"


def _m(source, *params):
    return {"source": source, "params": list(params)}


PIN = "ports/esp32/machine_pin.c"
PIN_INIT = [("mode", POS, None), ("pull", POS, -1), ("value", KW, None), ("drive", KW, None),
            ("hold", KW, None)]  # machine_pin_obj_init_helper's allowed_args
PWM_C = "ports/esp32/machine_pwm.c"
PWM_INIT = [("freq", POS, -1), ("duty", KW, -1), ("duty_u16", KW, -1), ("duty_ns", KW, -1),
            ("invert", KW, False), ("lightsleep", KW, False)]  # mp_machine_pwm_init_helper
COUNTER = "ports/esp32/modules/machine.py"
MODMACHINE = "ports/esp32/modmachine.c, extmod/modmachine.c"
PORT = {
    "Pin": {
        "constants": {  # machine_pin_locals_dict_table: GPIO_MODE_*, GPIO_PULL_*, GPIO_INTR_*
            "IN": 1, "OUT": 3, "OPEN_DRAIN": 7, "PULL_UP": 2, "PULL_DOWN": 1,
            "IRQ_RISING": 1, "IRQ_FALLING": 2, "WAKE_LOW": 4, "WAKE_HIGH": 5,
            "DRIVE_0": 0, "DRIVE_1": 1, "DRIVE_2": 2, "DRIVE_3": 3},
        "__init__": _m(PIN + " mp_pin_make_new + init_helper", ("id", POS, REQUIRED), *PIN_INIT),
        "init": _m(PIN + " machine_pin_obj_init_helper", *PIN_INIT),
        "value": _m(PIN + " machine_pin_value (VAR_BETWEEN 1, 2)", ("x", ONLY, None)),
        "on": _m(PIN + " machine_pin_on"),
        "off": _m(PIN + " machine_pin_off"),
        "toggle": _m(PIN + " machine_pin_toggle"),
        "irq": _m(PIN + " machine_pin_irq", ("handler", POS, None), ("trigger", POS, 3),
                  ("wake", POS, None)),
    },
    "Signal": {
        "__init__": _m("extmod/machine_signal.c signal_make_new (a Pin-like first argument)",
                       ("id", POS, REQUIRED), ("invert", KW, False)),
        "value": _m("extmod/machine_signal.c signal_value (VAR_BETWEEN 1, 2)",
                    ("x", ONLY, None)),
        "on": _m("extmod/machine_signal.c signal_on"),
        "off": _m("extmod/machine_signal.c signal_off"),
    },
    "PWM": {
        "__init__": _m(PWM_C + " mp_machine_pwm_make_new + init_helper", ("dest", POS, REQUIRED),
                       *PWM_INIT),
        "init": _m(PWM_C + " mp_machine_pwm_init_helper", *PWM_INIT),
        "freq": _m("extmod/machine_pwm.c machine_pwm_freq (VAR_BETWEEN 1, 2)",
                   ("value", ONLY, None)),
        "duty": _m("extmod/machine_pwm.c machine_pwm_duty (VAR_BETWEEN 1, 2)",
                   ("value", ONLY, None)),
        "duty_u16": _m("extmod/machine_pwm.c machine_pwm_duty_u16 (VAR_BETWEEN 1, 2)",
                       ("value", ONLY, None)),
        "duty_ns": _m("extmod/machine_pwm.c machine_pwm_duty_ns (VAR_BETWEEN 1, 2)",
                      ("value", ONLY, None)),
        "deinit": _m("extmod/machine_pwm.c machine_pwm_deinit"),
    },
    "ADC": {
        "constants": {"ATTN_0DB": 0, "ATTN_2_5DB": 1, "ATTN_6DB": 2, "ATTN_11DB": 3,
                      "WIDTH_9BIT": 9, "WIDTH_10BIT": 10, "WIDTH_11BIT": 11,
                      "WIDTH_12BIT": 12},  # ports/esp32/machine_adc.c ADC_ATTEN_DB_*
        # madc_init_helper: atten -1 = ADC_ATTEN_MAX (11 dB) for a new channel
        "__init__": _m("ports/esp32/machine_adc.c mp_machine_adc_make_new + madc_init_helper",
                       ("id", POS, REQUIRED), ("atten", KW, -1)),
        "init": _m("ports/esp32/machine_adc.c madc_init_helper", ("atten", KW, -1)),
        "read_uv": _m("extmod/machine_adc.c machine_adc_read_uv"),
        "read_u16": _m("extmod/machine_adc.c machine_adc_read_u16"),
        "read": _m("extmod/machine_adc.c machine_adc_read"),
        "atten": _m("extmod/machine_adc.c machine_adc_atten (OBJ_2)", ("atten", ONLY, REQUIRED)),
        "width": _m("extmod/machine_adc.c machine_adc_width (OBJ_2)", ("width", ONLY, REQUIRED)),
        "block": _m("extmod/machine_adc.c machine_adc_block"),
        "deinit": _m("extmod/machine_adc.c machine_adc_deinit"),
    },
    "Counter": {
        # esp32_pcnt.c: INCREMENT = PCNT_COUNT_INC, DECREMENT = PCNT_COUNT_DEC
        "constants": {"RISING": 1, "FALLING": 2, "UP": 1, "DOWN": 2},
        "__init__": _m(COUNTER + " _CounterBase.__init__(self, unit_id, *args, filter_ns=0, "
                       "**kwargs)", ("unit_id", POS, REQUIRED), ("args", VAR, None),
                       ("filter_ns", KW, 0), ("kwargs", VAR, None)),
        # what init(*args, **kwargs) takes: __init__'s filter_ns, Counter._configure's rest
        "init": _m(COUNTER + " _CounterBase.init -> __init__ -> Counter._configure(self, src, "
                   "edge=RISING, direction=UP)", ("src", POS, REQUIRED), ("edge", POS, 1),
                   ("direction", POS, 1), ("filter_ns", KW, 0)),
        "value": _m(COUNTER + " _CounterBase.value(self, value=None)", ("value", POS, None)),
        "deinit": _m(COUNTER + " _CounterBase.deinit(self)"),
    },
    "WDT": {
        "__init__": _m("extmod/machine_wdt.c machine_wdt_make_new", ("id", POS, 0),
                       ("timeout", POS, 5000)),
        "feed": _m("extmod/machine_wdt.c machine_wdt_feed"),
    },
    "RTC": {
        "__init__": _m("ports/esp32/machine_rtc.c machine_rtc_make_new (no arguments)"),
        "datetime": _m("ports/esp32/machine_rtc.c machine_rtc_datetime (VAR_BETWEEN 1, 2)",
                       ("datetimetuple", ONLY, None)),
        "init": _m("ports/esp32/machine_rtc.c machine_rtc_init (OBJ_2)",
                   ("datetimetuple", ONLY, REQUIRED)),
        "memory": _m("ports/esp32/machine_rtc.c machine_rtc_memory (VAR_BETWEEN 1, 2)",
                     ("data", ONLY, None)),
    },
    "functions": {
        "reset": _m(MODMACHINE + " machine_reset (OBJ_0)"),
        "soft_reset": _m("extmod/modmachine.c: sys.exit (VAR_BETWEEN 0, 1)",
                         ("retval", ONLY, None)),
        "reset_cause": _m(MODMACHINE + " machine_reset_cause (OBJ_0)"),
        "unique_id": _m(MODMACHINE + " machine_unique_id (OBJ_0)"),
        "freq": _m(MODMACHINE + " machine_freq (VAR_BETWEEN 0, 1)", ("value", ONLY, None)),
        "bootloader": _m("extmod/modmachine.c machine_bootloader (VAR_BETWEEN 0, 1)",
                         ("value", ONLY, None)),
        "idle": _m("extmod/modmachine.c machine_idle (OBJ_0)"),
    },
    # ports/esp32/modmachine.c: the enum from MP_PWRON_RESET = 1
    "constants": {"PWRON_RESET": 1, "HARD_RESET": 2, "WDT_RESET": 3, "DEEPSLEEP_RESET": 4,
                  "SOFT_RESET": 5, "SLEEP": 2, "DEEPSLEEP": 4},
}
# Classes whose check waits for a rewrite in progress (their facts are above); none now.
AWAITING = set()


def _literal(node):
    if node is None:
        return REQUIRED
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ("expression", ast.unparse(node))


def signature(fn):
    """[(name, kind, default)] of a def, self and cls left out."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [(p.arg, POS, _literal(d)) for p, d in zip(positional, defaults, strict=True)
           if p.arg not in ("self", "cls")]
    if a.vararg:
        out.append((a.vararg.arg, VAR, None))
    out += [(p.arg, KW, _literal(d)) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        out.append((a.kwarg.arg, VAR, None))
    return out


def standin_api(source):
    """{class or "functions": {name: signature}} and {scope: {constant: value}}."""
    api, constants = {"functions": {}}, {"constants": {}}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api[node.name] = {}
            constants[node.name] = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (
                        not item.name.startswith("_") or item.name in ("__init__", "__call__")):
                    api[node.name][item.name] = signature(item)
                elif isinstance(item, ast.Assign):
                    constants[node.name].update(
                        (t.id, _literal(item.value)) for t in item.targets
                        if isinstance(t, ast.Name) and not t.id.startswith("_"))
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            api["functions"][node.name] = signature(node)
        elif isinstance(node, ast.Assign):
            constants["constants"].update(
                (t.id, _literal(node.value)) for t in node.targets
                if isinstance(t, ast.Name) and not t.id.startswith("_"))
    return api, constants


def _params_problems(where, ours, theirs):
    """The stand-in may leave out what the port has (a call of it then fails loudly on the
    virtual board), never add to it, nor change a name, kind, order or default."""
    problems = []
    port_pos = [p for p in theirs if p[1] in (POS, ONLY)]
    port_kw = {p[0]: p for p in theirs if p[1] in (POS, KW)}
    port_var = [p for p in theirs if p[1] == VAR]
    pos = [p for p in ours if p[1] == POS]
    for i, (name, _, default) in enumerate(pos):
        if i >= len(port_pos):
            problems.append("%s(%s): the port takes no such argument" % (where, name))
            continue
        port_name, kind, port_default = port_pos[i]
        if kind == POS and name != port_name:
            problems.append("%s(%s): the port names it %s" % (where, name, port_name))
        if default != port_default:
            problems.append("%s(%s=%r): the port's default is %r" % (
                where, name, default, port_default))
    for name, kind, default in ours:
        if kind == KW:
            if name not in port_kw:
                problems.append("%s(*, %s): the port takes no such argument" % (where, name))
            elif port_kw[name][1] == POS:
                problems.append("%s(*, %s): positional on the port" % (where, name))
            elif default != port_kw[name][2]:
                problems.append("%s(%s=%r): the port's default is %r" % (
                    where, name, default, port_kw[name][2]))
        elif kind == VAR and not port_var:
            problems.append("%s(*%s): the port takes a fixed set of arguments" % (where, name))
    for i, (name, _, default) in enumerate(port_pos):
        if default is REQUIRED and i >= len(pos) and not any(p[1] == VAR for p in ours):
            problems.append("%s: the port's required argument %s is missing" % (where, name))
    return problems


def mismatches(source, port=PORT, awaiting=frozenset()):
    api, constants = standin_api(source)
    problems = []
    for scope, members in api.items():
        if scope in awaiting:
            continue
        if scope not in port:
            problems.append("machine.%s is not in the ESP32 port" % scope)
            continue
        for name, params in members.items():
            where = name if scope == "functions" else "%s.%s" % (scope, name)
            if name not in port[scope]:
                problems.append("machine.%s is not in the ESP32 port" % where)
            else:
                problems += _params_problems(where, params, port[scope][name]["params"])
    for scope, values in constants.items():
        if scope in awaiting:
            continue
        theirs = port[scope] if scope == "constants" else port.get(scope, {}).get("constants", {})
        for name, value in values.items():
            if isinstance(value, tuple):  # simhw.IN ...: test_standin_constants_have_...
                continue
            if theirs.get(name) != value:
                problems.append("%s.%s = %r: the port's is %r" % (
                    scope, name, value, theirs.get(name, "(none)")))
    return problems


def test_standin_matches_the_esp32_ports_argument_tables():
    for standin in (STANDIN, EXTRA):
        assert mismatches(standin.read_text(), awaiting=AWAITING) == [], standin.name


def test_every_fact_names_its_source():
    for scope, members in PORT.items():
        for name, fact in members.items():
            if name != "constants" and scope != "constants":
                assert fact["source"].split()[0].startswith(("ports/esp32/", "extmod/")), name


@pytest.mark.parametrize("fake, expected", [
    ("class PWM:\n    def duty_percent(self, value): pass\n", "PWM.duty_percent"),
    ("class PWM:\n    def __init__(self, dest, *, freq=None): pass\n", "PWM.__init__(*, freq)"),
    ("class PWM:\n    def __init__(self, dest, freq=None): pass\n", "PWM.__init__(freq=None)"),
    ("class Pin:\n    def irq(self, handler=None, trigger=3, *, hard=False): pass\n",
     "Pin.irq(*, hard)"),
    ("class Pin:\n    def irq(self, handler=None, trigger=3, priority=1): pass\n",
     "Pin.irq(priority)"),
    ("class Pin:\n    HIGH_Z = 9\n", "Pin.HIGH_Z"),
    ("class Pin:\n    OUT = 2\n", "Pin.OUT = 2"),
    ("class Servo:\n    pass\n", "machine.Servo"),
    ("def reset_cause(detail):\n    pass\n", "reset_cause(detail)"),
    ("class WDT:\n    def __init__(self, *, id=0, timeout=5000): pass\n", "WDT.__init__(*, id)"),
    ("class Counter:\n    def init(self, edge=1): pass\n", "Counter.init(edge)"),
    ("class RTC:\n    def init(self): pass\n", "required argument"),
    ("class WDT:\n    def feed(self, *args): pass\n", "WDT.feed(*args)"),
])
def test_checker_catches_invented_api(fake, expected):
    problems = mismatches(fake)
    assert any(expected in p for p in problems), problems


def test_awaiting_classes_have_their_facts():
    assert AWAITING <= set(PORT)


SIMHW = STANDIN.parent / "simhw.py"


def _int_value(node, known):
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "const" and node.args:
        return _int_value(node.args[0], known)
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "simhw":
        return known.get(node.attr)
    return None


def int_values(source, simhw=None):
    """{name or Class.name: int} of the assignments whose value a reader can tell: a
    literal, const(literal), or one of simhw's constants (`simhw.OUT`)."""
    out = {}
    for node in ast.parse(source).body:
        items = [(node.name + ".", item) for item in node.body] \
            if isinstance(node, ast.ClassDef) else [("", node)]
        for prefix, item in items:
            if isinstance(item, ast.Assign):
                targets, value = item.targets, item.value
            elif isinstance(item, ast.AnnAssign) and item.value is not None:
                targets, value = [item.target], item.value
            else:
                continue
            number = _int_value(value, simhw or {})
            out.update((prefix + t.id, number) for t in targets
                       if isinstance(t, ast.Name) and number is not None)
    return out


def test_standin_constants_have_the_esp32_ports_values():
    # the register file carries them as they are (simhw's G_MODE holds machine.Pin's mode)
    ours = int_values(STANDIN.read_text() + EXTRA.read_text(), int_values(SIMHW.read_text()))
    theirs = {("%s.%s" % (scope, name) if scope != "constants" else name): value
              for scope, members in PORT.items() if scope != "functions"
              for name, value in (members if scope == "constants" else
                                  members.get("constants", {})).items()}
    assert {"Pin.IN", "Pin.OUT", "PWRON_RESET", "WDT_RESET"} <= set(ours)
    assert {name: (value, theirs.get(name)) for name, value in ours.items()
            if not name.split(".")[-1].startswith("_") and name.split(".")[0] not in AWAITING
            and theirs.get(name) != value} == {}


def test_reset_causes_are_the_protocols_on_both_sides():
    """The firmware names machine.reset_cause() by the protocol's RESET_CAUSES; the VM's
    machine.py and the host's virtual chip number the causes the same way."""
    from penctl.firmware.codes import RESET_CAUSES
    from penctl.sim import chip

    vm = int_values(STANDIN.read_text())
    for constant, name in (("PWRON_RESET", "PWRON"), ("HARD_RESET", "HARD"),
                           ("WDT_RESET", "WATCHDOG"), ("SOFT_RESET", "SOFT")):
        assert RESET_CAUSES[vm[constant]] == name
        assert getattr(chip, constant) == vm[constant]
