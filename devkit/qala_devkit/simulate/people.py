"""People and companies of the simulated world: IINs, BINs, names, phones, addresses.

All vectorised (numpy arrays in, arrays out). Every value here is personal data in the real
systems: the pipeline must hash or drop it before anything leaves the landing zone.

IIN (individual identification number, 12 digits): YYMMDD of birth; a century-and-sex digit
(1/2: 1800s male/female, 3/4: 1900s, 5/6: 2000s); a 4-digit serial; a check digit. BIN
(business identification number, 12 digits): YYMM of registration; the entity type (4 resident
legal entity, 5 non-resident, 6 individual entrepreneur in joint form); the unit (0 head
office, 1 branch, 2 representative office); a 5-digit serial; a check digit.

The check digit (both numbers): sum(d_i * i) for i = 1..11, mod 11; if that is 10, again
with the weights 3 4 5 6 7 8 9 10 11 1 2; if still 10, the number is never issued.
"""

from __future__ import annotations

from datetime import date

import numpy as np

WEIGHTS_1 = np.arange(1, 12)
WEIGHTS_2 = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2])


def check_digit(digits: np.ndarray) -> np.ndarray:
    """Check digits of an (n, 11) digit array; 10 where the number cannot be issued."""
    first = (digits @ WEIGHTS_1) % 11
    second = (digits @ WEIGHTS_2) % 11
    return np.where(first == 10, second, first)


def is_valid(numbers) -> np.ndarray:
    """Whether each 12-digit IIN/BIN string has a correct check digit."""
    numbers = np.asarray(numbers, dtype="U12")
    ok = np.char.str_len(numbers) == 12
    ok &= np.char.isdigit(numbers)
    digits = _digits(np.where(ok, numbers, "0" * 12), 12)
    return ok & (check_digit(digits[:, :11]) == digits[:, 11])


def iin(birth: np.ndarray, female: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Valid IINs for people born on `birth` (datetime64[D]) with the given sex.

    Serials are drawn at random; a serial whose check digit would be 10 is redrawn, as the
    registry never issues such numbers.
    """
    birth = np.asarray(birth, dtype="datetime64[D]")
    n = birth.size
    years = birth.astype("datetime64[Y]").astype(int) + 1970
    months = birth.astype("datetime64[M]").astype(int) % 12 + 1
    days = (birth - birth.astype("datetime64[M]")).astype(int) + 1
    century = np.select([years < 1900, years < 2000], [1, 3], 5) + np.asarray(female, dtype=int)
    head = np.column_stack([years % 100 // 10, years % 10, months // 10, months % 10, days // 10,
                            days % 10, century])  # fmt: skip
    return _with_serial(head, 4, rng, n)


def bin_(registered: np.ndarray, entity_type: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Valid BINs for companies registered in the month of `registered` (datetime64)."""
    registered = np.asarray(registered, dtype="datetime64[M]")
    n = registered.size
    years = registered.astype("datetime64[Y]").astype(int) + 1970
    months = registered.astype(int) % 12 + 1
    unit = np.zeros(n, dtype=int)
    head = np.column_stack([years % 100 // 10, years % 10, months // 10, months % 10,
                            np.asarray(entity_type, dtype=int) * np.ones(n, dtype=int), unit])  # fmt: skip
    return _with_serial(head, 5, rng, n)


def break_check_digit(numbers) -> np.ndarray:
    """The same numbers with a wrong check digit (a typo in the last digit)."""
    digits = _digits(np.asarray(numbers, dtype="U12"), 12)
    digits[:, 11] = (digits[:, 11] + 1 + np.arange(len(digits)) % 9) % 10
    return _join(digits)


def _with_serial(head: np.ndarray, serial_digits: int, rng: np.random.Generator, n: int) -> np.ndarray:
    serial = rng.integers(0, 10**serial_digits, n)
    while True:
        digits = np.column_stack([head, _digits(serial, serial_digits)])
        check = check_digit(digits)
        bad = check == 10
        if not bad.any():
            break
        serial[bad] = (serial[bad] + 1) % 10**serial_digits
    return _join(np.column_stack([digits, check]))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) digit array from integers or digit strings."""
    values = np.asarray(values)
    if values.dtype.kind in "US":
        codes = np.frombuffer(values.astype(f"U{width}").tobytes(), dtype=np.uint32)
        return (codes.reshape(-1, width) - ord("0")).astype(np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (values.astype(np.int64)[:, None] // powers) % 10


def _join(digits: np.ndarray) -> np.ndarray:
    width = digits.shape[1]
    codes = (digits + ord("0")).astype(np.uint32)
    return np.frombuffer(codes.tobytes(), dtype=f"U{width}")


# --- names, phones, addresses -----------------------------------------------------------------

# Kazakh and Russian names in Cyrillic, with the Kazakh letters ә ғ қ ң ө ұ ү һ і.
KAZAKH_MALE = ("Әлихан", "Ерғали", "Нұрсұлтан", "Дәурен", "Қайрат", "Бауыржан", "Ерлан", "Асқар",
               "Жандос", "Нұрлан", "Серік", "Мұхтар", "Тимур", "Айбек", "Ғалым", "Әділет", "Өмірзақ",
               "Құдайберген", "Рүстем", "Шыңғыс", "Дінмұхамед", "Ілияс", "Жәнібек", "Һарун")  # fmt: skip
KAZAKH_FEMALE = ("Әсел", "Айгүл", "Гүлнар", "Жұлдыз", "Мөлдір", "Дана", "Айжан", "Ақбота",
                 "Назерке", "Аружан", "Сәуле", "Інжу", "Ұлжан", "Томирис", "Балнұр", "Меруерт",
                 "Әйгерім", "Гүлмира", "Қарлығаш", "Раушан", "Аңсаған")  # fmt: skip
KAZAKH_SURNAMES = ("Әбдіқадыров", "Нұрпейісов", "Сәрсенбаев", "Қасымов", "Оспанов", "Жұмабаев",
                   "Төлегенов", "Ахметов", "Бекмұхамбетов", "Есенов", "Құнанбаев", "Сейітов",
                   "Мұратов", "Ыбырайымов", "Әуезов", "Байтұрсынов", "Рысқұлов", "Ғабдуллин",
                   "Өтепов", "Ұзақбаев", "Шәкенов", "Ілиясов", "Жақыпов", "Тұрсынов")  # fmt: skip
RUSSIAN_MALE = ("Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Николай", "Иван",
                "Михаил", "Владимир", "Евгений", "Павел", "Виктор")  # fmt: skip
RUSSIAN_FEMALE = ("Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Анна", "Мария",
                  "Юлия", "Екатерина", "Людмила", "Галина")  # fmt: skip
RUSSIAN_SURNAMES = ("Иванов", "Петров", "Смирнов", "Кузнецов", "Попов", "Васильев", "Соколов",
                    "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Лебедев", "Ким", "Пак")  # fmt: skip
KAZAKH_SHARE = 0.71  # ethnic Kazakhs, 2024 (Bureau of National Statistics, rounded)

MOBILE_CODES = np.array([700, 701, 702, 705, 707, 708, 747, 771, 775, 776, 777, 778])

STREET_NAMES = ("Абая", "Сәтпаева", "Төле би", "Жібек жолы", "Қабанбай батыра", "Республики",
                "Мәңгілік Ел", "Тұран", "Кенесары", "Сейфуллина", "Бөкейхана", "Әйтеке би",
                "Байтұрсынұлы", "Желтоқсан", "Қонаева", "Ауэзова", "Гагарина", "Абылай хана")  # fmt: skip


def people(rng: np.random.Generator, n: int, born_from: date, born_to: date) -> dict[str, np.ndarray]:
    """n people born in [born_from, born_to]: iin, sex ('M'/'F'), birth_date (datetime64[D]),
    first_name, last_name, patronymic (may be '' for Russians without one recorded), phone."""
    first, last = np.datetime64(born_from, "D"), np.datetime64(born_to, "D")
    birth = first + rng.integers(0, int((last - first).astype(int)) + 1, n).astype("timedelta64[D]")
    female = rng.random(n) < 0.5
    kazakh = rng.random(n) < KAZAKH_SHARE
    first_name = np.where(
        kazakh,
        np.where(female, _choice(rng, KAZAKH_FEMALE, n), _choice(rng, KAZAKH_MALE, n)),
        np.where(female, _choice(rng, RUSSIAN_FEMALE, n), _choice(rng, RUSSIAN_MALE, n)),
    )
    surname = np.where(kazakh, _choice(rng, KAZAKH_SURNAMES, n), _choice(rng, RUSSIAN_SURNAMES, n))
    last_name = np.where(female & (surname != "Ким") & (surname != "Пак"), np.char.add(surname, "а"), surname)
    father = np.where(kazakh, _choice(rng, KAZAKH_MALE, n), _choice(rng, RUSSIAN_MALE, n))
    patronymic = np.where(
        kazakh,
        np.char.add(father, np.where(female, "қызы", "ұлы")),
        np.char.add(np.char.rstrip(father, "й"),
                    np.where(female, np.where(np.char.endswith(father, "й"), "евна", "овна"),
                             np.where(np.char.endswith(father, "й"), "евич", "ович"))),
    )
    return {
        "iin": iin(birth, female, rng),
        "sex": np.where(female, "F", "M"),
        "birth_date": birth,
        "first_name": first_name,
        "last_name": last_name,
        "patronymic": patronymic,
        "phone": phones(rng, n),
    }


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Kazakh mobile numbers as people type them: +7 7XX XXX XX XX."""
    code = MOBILE_CODES.astype("U3")[rng.integers(0, MOBILE_CODES.size, n)]
    number = rng.integers(0, 10_000_000, n)
    out = np.char.add("+7 ", code)
    for part in (_PADDED_3[number // 10_000], _PADDED_2[number // 100 % 100], _PADDED_2[number % 100]):
        out = np.char.add(np.char.add(out, " "), part)
    return out


_PADDED_3 = np.char.zfill(np.arange(1000).astype("U3"), 3)
_PADDED_2 = np.char.zfill(np.arange(100).astype("U2"), 2)


def addresses(rng: np.random.Generator, n: int, towns: np.ndarray) -> np.ndarray:
    """Street addresses in the given towns (one town name per row)."""
    street = _choice(rng, STREET_NAMES, n)
    house = np.char.lstrip(_PADDED_3[rng.integers(1, 250, n)], "0")
    flat = np.char.lstrip(_PADDED_3[rng.integers(1, 180, n)], "0")
    out = np.char.add(np.char.add(np.asarray(towns, dtype="U40"), ", ул. "), street)
    out = np.char.add(np.char.add(out, ", д. "), house)
    return np.char.add(np.char.add(out, ", кв. "), flat)


def _choice(rng: np.random.Generator, values: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(values)[rng.integers(0, len(values), n)]
