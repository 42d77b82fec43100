"""Host-side serial drivers with the faults of real USB-serial chips, as pyserial URL handlers.

pyserial looks up ``scheme://`` ports in the packages of ``serial.protocol_handler_packages``;
:func:`fakes.serial_devices.register_drivers` adds this one.
"""
