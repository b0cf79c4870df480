# carkey — where a Car is put together: the board's pins, the door controller, the car bus, the ECU.
# SPDX-License-Identifier: MIT
#
# The application, the virtual car, the benchmark and the tests all build their car
# here, so they run the same wiring. Two steps, because the application needs time
# between them: door() first (every relay at its safe level before anything slow),
# car() once the radios are up and the reader identity exists.


def door(desc, pin_factory=None, uart_factory=None, clock=None):
    """(Board, DoorController) for a board description; outputs are safe on return."""
    from carkey.ecu.door import DoorController
    from carkey.hw.pins import Board

    board = Board(desc, pin_factory, uart_factory)
    if clock is None:
        return board, DoorController(board.outputs, board.inputs)
    return board, DoorController(board.outputs, board.inputs, clock=clock)


def car(state_dir, board, door_controller, place="door", pool=None):
    """The Car over state_dir, with a CarBus on the board's "carbus" UART if it has
    one (a UART factory may answer None: no car bus there)."""
    from carkey.ecu.car import Car

    carbus = None
    if "carbus" in board.buses:
        uart = board.uart("carbus")
        if uart is not None:
            from carkey.ecu.carbus import CarBus

            carbus = CarBus(uart)
    return Car(state_dir, door_controller, carbus, pool=pool, place=place)
