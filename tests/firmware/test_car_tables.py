# carkey — the Car's one verification-table buffer: a table build gives way to a tap and starts over.
# SPDX-License-Identifier: MIT
#
# The Car reads a key's verification table for a tap into one buffer and builds
# missing tables in the same one (one 4160-byte buffer, not two). A build must never
# write while a tap holds a table there: a tap that starts while a build is under way
# is granted with its table intact, the build gives up, and the next call builds the
# table whole, byte for byte as p256.verify_table.
#
# Run: .venv/bin/pytest -q tests/firmware/test_car_tables.py

import asyncio
import unittest

from car_rig import CarRig
from carkey.crypto import p256
from carkey.ecu import codes
from carkey.ecu.keystore import Credential


class TableBufferTest(unittest.TestCase):
    def setUp(self):
        self.rig = CarRig("tables")
        self.car = self.rig.car
        self.assertEqual(asyncio.run(self.car.prepare_tables()), 1)  # the owner's table

    def tearDown(self):
        self.rig.close()

    def add_key(self):
        pub = p256.generate_keypair()[1]
        cred = Credential(pub, codes.ROLE_DRIVER, codes.ENT_ALL)
        self.car.keys.add(cred)
        self.car.keys.commit()
        return cred

    def test_a_tap_during_a_build_keeps_its_table_and_the_build_starts_over(self):
        car = self.car
        cred = self.add_key()

        async def tap_during_build():
            build = asyncio.create_task(car.prepare_tables())
            for _ in range(3):
                await asyncio.sleep_ms(0)  # the build runs a few slices
            outcome = await car.handle(self.rig.owner, 3)  # a standard tap: the owner's table
            return outcome, await build

        outcome, built = asyncio.run(tap_during_build())
        self.assertTrue(outcome.granted, outcome)
        self.assertEqual(outcome.kind, "standard")
        self.assertEqual(built, 0)  # given up when the tap started
        self.assertEqual([c.slot for c in car.keys.without_table()], [cred.slot])
        self.assertEqual(asyncio.run(car.prepare_tables()), 1)
        self.assertEqual(bytes(car.keys.table(cred)), bytes(p256.verify_table(cred.pub)))

    def test_a_build_started_after_the_tap_read_its_table_leaves_the_table_alone(self):
        # The worst moment: the idle loop starts a build right after the tap has
        # read its table into the buffer and before the signature check has used it.
        car = self.car
        cred = self.add_key()
        keys = car.keys
        read = keys.table
        builds = []

        def table_then_build(c):
            t = read(c)
            builds.append(asyncio.create_task(car.prepare_tables()))
            return t

        keys.table = table_then_build

        async def tap():
            outcome = await car.handle(self.rig.owner, 3)
            done = []
            for b in builds:
                done.append(await b)
            return outcome, done

        outcome, built = asyncio.run(tap())
        del keys.table
        self.assertTrue(outcome.granted, outcome)  # with a build writing into its table: refused
        self.assertEqual(built, [0])
        self.assertEqual(asyncio.run(car.prepare_tables()), 1)
        self.assertEqual(bytes(car.keys.table(cred)), bytes(p256.verify_table(cred.pub)))

    def test_no_build_starts_while_a_tap_is_under_way(self):
        car = self.car
        self.add_key()
        car._tapping = True  # as between the start and the end of Car.handle
        self.assertEqual(asyncio.run(car.prepare_tables()), 0)
        car._tapping = False
        self.assertEqual(asyncio.run(car.prepare_tables()), 1)
        self.assertEqual(car.keys.without_table(), [])


if __name__ == "__main__":
    unittest.main()
